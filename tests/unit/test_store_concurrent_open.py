"""Several processes opening one new SQLite store at once (gunicorn's workers at start-up) all
succeed: the WAL switch they race for is retried instead of failing a worker's boot."""

from __future__ import annotations

import multiprocessing
from pathlib import Path


def _open(path: str, results: "multiprocessing.Queue[str]") -> None:
    from stellaops.store.sqlite import SQLiteStore

    try:
        SQLiteStore(path).close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(repr(exc))


def test_processes_opening_a_new_store_together_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for round_ in range(15):
        results: "multiprocessing.Queue[str]" = ctx.Queue()
        path = str(tmp_path / f"store-{round_}.db")
        procs = [ctx.Process(target=_open, args=(path, results)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcomes += [results.get(timeout=5) for _ in procs]
    assert outcomes == ["ok"] * len(outcomes), [o for o in outcomes if o != "ok"]
