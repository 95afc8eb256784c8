"""``stella attest import`` and ``stella attest tree --imported`` open the store with the
configured ``limits.storeRowsPerTenantDigest``: the CLI import keeps only the newest N rows per
(tenant, digest), as the import API does (T-A6c). Through the real entry point and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from stellaops.cli import main
from stellaops.store import open_store
from tests.unit.test_import_parse import IMAGE_DIGEST, envelope, statement


def _import(tmp_path: Path, n: int, cap: str) -> int:
    payload = statement(predicate={"buildType": "x", "builder": {"id": f"b{n}"}})
    (tmp_path / f"a{n}.json").write_bytes(envelope(payload))
    (tmp_path / "c.yaml").write_text(f"store:\n  dsn: sqlite:///{tmp_path}/s.db\n{cap}")
    with pytest.raises(SystemExit) as exc:
        main(["attest", "import", "--envelope", str(tmp_path / f"a{n}.json"), "--config", str(tmp_path / "c.yaml"), "--tenant", "acme"])
    return int(exc.value.code or 0)


def _rows(tmp_path: Path) -> int:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        return len(store.list_for_tenant("acme", IMAGE_DIGEST))
    finally:
        store.close()


def test_cli_import_applies_the_configured_row_cap(tmp_path: Path) -> None:
    for n in range(4):
        assert _import(tmp_path, n, "limits: {storeRowsPerTenantDigest: 2}\n") == 0
    assert _rows(tmp_path) == 2


def test_without_a_cap_the_default_keeps_them(tmp_path: Path) -> None:  # the control
    for n in range(4):
        assert _import(tmp_path, n, "") == 0
    assert _rows(tmp_path) == 4
