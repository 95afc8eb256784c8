"""A bounded load test on loopback with faults injected mid-run (issue 10 §7).

Several client threads send Gatekeeper ProviderRequests (1–5 keys: healthy images, images
behind the fault proxy, unparsable references, missing images) to the real provider
(``stella serve``, gunicorn workers: `stellaops.tlsworker.TLSHandshakeWorker`, a gthread worker that does TLS handshakes in its event loop) for a fixed time and request budget, while a
controller cycles the proxy through 5xx, stall, reset, delay and truncation. Asserted:

- every answer is HTTP 200 and a well-formed ProviderResponse, every key is answered (an item,
  or named in ``systemError``), and no healthy key is ever unverified;
- no answer takes longer than the deadline plus a generous bound (a hang, not a benchmark);
- no gunicorn worker died or was restarted, none logged a timeout or a traceback;
- worker memory (RSS) grew by less than a fixed bound.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.faults import FaultProxy
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import start_provider
from tests.hardening._support import (
    assert_provider_response,
    egress_env,
    new_key,
    provider_config,
    push_att,
    sign_envelope,
    statement,
    write_public_key,
)

DURATION = 15.0  # seconds of load
MAX_REQUESTS = 4000
CLIENTS = 6
DEADLINE = 1.5
HANG_BOUND = DEADLINE + 8.0  # far above any sane latency on 2 busy cores: only a hang trips it
RSS_GROWTH_BOUND = 80 * 1024 * 1024
FAULT_CYCLE = [("pass", {}), ("status", {"code": 503}), ("pass", {}), ("stall", {}), ("reset", {}), ("pass", {}),
               ("delay", {"seconds": 3.0}), ("truncate", {"only": "/blobs/"}), ("status", {"code": 429}), ("pass", {})]  # fmt: skip


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.add(int(entry))
            except OSError:
                continue
    return out


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bounded_load_with_faults_mid_run(tmp_path: Path, ocireg: str) -> None:
    key = new_key()
    client = loopback_client()
    images = []
    for i in range(6):
        repo = f"load/app{i}"
        digest = push_test_image(ocireg, repo, "v1", client=client)
        push_att(client, ocireg, repo, digest, [sign_envelope(statement(digest), [key])])
        images.append((repo, digest))
    client.close()
    proxy = FaultProxy(ocireg)
    env, trip = egress_env(tmp_path)
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key, tmp_path / "k.pub")}, deadline=DEADLINE, cache_ttl=1,
                          extra=f"server: {{deadlineSeconds: {DEADLINE}, workers: 2, threads: 8}}\n"
                          "limits: {connectTimeoutSeconds: 1, readTimeoutSeconds: 3, retries: 1}\n")  # fmt: skip
    provider = start_provider(tmp_path / "provider", cfg, env=env)
    healthy = [f"{ocireg}/{r}@{d}" for r, d in images]
    faulty = [f"{proxy.address}/{r}@{d}" for r, d in images]
    junk = ["not a reference", f"{ocireg}/load/missing:v1", "UPPER/Case:1"]
    try:
        assert provider.proc is not None
        master = provider.proc.pid
        # warm up every worker, then take the baseline
        for _ in range(20):
            provider.verify(*healthy[:2])
        workers = _children(master)
        assert len(workers) == 2, workers
        rss0 = {w: _rss(w) for w in workers}

        stop = threading.Event()
        problems: list[str] = []
        latencies: list[float] = []
        count = [0]
        transient = [0]
        lock = threading.Lock()

        def controller() -> None:
            step = DURATION / len(FAULT_CYCLE)
            for mode, opts in FAULT_CYCLE:
                if stop.is_set():
                    break
                proxy.set(mode, **opts)
                stop.wait(step)
            proxy.clear()

        def client_loop(seed: int) -> None:
            rnd = random.Random(seed)
            while not stop.is_set():
                with lock:
                    if count[0] >= MAX_REQUESTS:
                        return
                    count[0] += 1
                keys = rnd.sample(healthy + faulty + junk, rnd.randint(1, 5))
                started = time.monotonic()
                try:
                    doc = provider.verify(*keys)
                except Exception as exc:  # noqa: BLE001 - any transport failure is a finding
                    problems.append(f"request failed: {type(exc).__name__}: {exc}")
                    continue
                elapsed = time.monotonic() - started
                with lock:
                    latencies.append(elapsed)
                status = doc.pop("_status")
                try:
                    assert status == 200, status
                    assert_provider_response(doc)
                    items = {i["key"]: i for i in doc["response"]["items"]}
                    if doc["response"]["systemError"]:
                        with lock:
                            transient[0] += 1
                    for k in keys:
                        assert k in items or k in doc["response"]["systemError"], f"{k} neither answered nor in systemError"
                        if k in healthy and k in items:
                            assert items[k]["value"]["attestations"][0]["verified"] is True, items[k]
                        if k in junk:  # definitive: always an item with an error
                            assert k in items and items[k]["error"], items.get(k)
                    assert elapsed < HANG_BOUND, f"answer took {elapsed:.1f}s"
                except AssertionError as exc:
                    problems.append(f"{exc} :: {json.dumps(doc)[:400]}")

        ctl = threading.Thread(target=controller, daemon=True)
        ctl.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client_loop, s) for s in range(CLIENTS)]
            stop.wait(DURATION)
            stop.set()
            for f in futures:
                f.result(timeout=60)
        ctl.join(timeout=10)
        proxy.clear()

        assert not problems, f"{len(problems)} bad answers out of {count[0]}; first: {problems[:3]}"
        assert count[0] > 50, f"only {count[0]} requests completed"
        assert transient[0] > 0, "no fault reached the provider: the test proved nothing"
        # the provider still answers normally after the storm
        doc = provider.verify(*faulty[:2])
        assert all(i["value"]["attestations"][0]["verified"] for i in doc["response"]["items"]), doc
        after = _children(master)
        assert after == workers, f"workers changed during the run: {workers} → {after} (a worker died or was restarted)"
        growth = {w: _rss(w) - rss0[w] for w in workers}
        assert max(growth.values()) < RSS_GROWTH_BOUND, f"worker RSS grew by {growth}"
        log = provider.log()
        for bad in ("WORKER TIMEOUT", "Worker exiting"):
            assert bad not in log, f"{bad!r} in the provider log"
        tracebacks = [ln for ln in log.splitlines() if "Traceback (most recent call last)" in ln]
        assert not tracebacks, tracebacks[0][:2000]
        assert not trip.exists() or not trip.read_text()
    finally:
        provider.stop()
        proxy.stop()
