"""Faults with real processes: a real registry (Debian's Distribution, restartable on the same
port) behind the fault-injecting proxy (``tests/fixtures/faults.py``), the real provider
(``stella serve``), a real PostgreSQL stopped and started.

For every fault the provider must (DESIGN.md §2 "Failure semantics"):
- answer a well-formed ProviderResponse within its deadline (plus scheduling slack);
- report a transient failure in ``systemError`` naming the key, with the key's item omitted
  (Gatekeeper caches items, never ``systemError``), or a definitive one as an item;
- never answer ``verified: true`` for what it could not check;
- recover on the next request once the fault ends.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stellaops.registry import RegistryClient
from tests.fixtures.faults import FaultProxy, RestartableRegistry
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, start_provider
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

DEADLINE = 1.5
SLACK = 3.0  # scheduling on a busy 2-core machine, loopback I/O: only a hang or a missed deadline trips it


@dataclass
class Rig:
    registry: RestartableRegistry
    proxy: FaultProxy
    provider: ProviderProcess
    digest: str
    repo: str
    egress_log: Path

    def key(self, via_proxy: bool = True) -> str:
        host = self.proxy.address if via_proxy else self.registry.address
        return f"{host}/{self.repo}@{self.digest}"

    def ask(self, *keys: str) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        doc = self.provider.verify(*keys)
        elapsed = time.monotonic() - started
        doc.pop("_status")
        assert_provider_response(doc)
        return doc, elapsed


def _items(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["key"]: i for i in doc["response"]["items"]}


def assert_verified(rig: Rig, key: str) -> None:
    doc, _ = rig.ask(key)
    items = _items(doc)
    assert key in items and items[key]["error"] == "", doc
    atts = items[key]["value"]["attestations"]
    assert atts and atts[0]["verified"] is True, doc


def assert_transient(doc: dict[str, Any], key: str, *reasons: str) -> None:
    assert key not in _items(doc), f"a transient failure must not be a cached item: {doc}"
    se = doc["response"]["systemError"]
    assert key in se, doc
    assert any(r in se for r in reasons), f"expected one of {reasons} in systemError: {se}"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("faults")
    registry = RestartableRegistry(tmp / "registry")
    registry.start()
    client: RegistryClient = loopback_client()
    key = new_key()
    digest = push_test_image(registry.address, "faults/app", "v1", client=client)
    push_att(client, registry.address, "faults/app", digest, [sign_envelope(statement(digest), [key])])
    client.close()
    proxy = FaultProxy(registry.address)
    env, trip = egress_env(tmp)
    # transientMemorySeconds 0: each fault case asks the registry afresh; with the memory on, a key
    # that just ended transient would be answered with the previous case's systemError for 5 s
    cfg = provider_config(tmp, {"release-key": write_public_key(key, tmp / "k.pub")},
                          extra=f"server: {{deadlineSeconds: {DEADLINE}, transientMemorySeconds: 0}}\n")
    cfg += "limits: {connectTimeoutSeconds: 1, readTimeoutSeconds: 5, retries: 2}\n"
    provider = start_provider(tmp / "provider", cfg, env=env)
    try:
        yield Rig(registry, proxy, provider, digest, "faults/app", trip)
    finally:
        provider.stop()
        proxy.stop()
        registry.stop()
        assert not trip.exists() or not trip.read_text(), f"non-loopback connects attempted: {trip.read_text()}"


def test_baseline_through_the_proxy_verifies(rig: Rig) -> None:
    rig.proxy.clear()
    assert_verified(rig, rig.key())


TRANSIENT_FAULTS = {
    "http_503": (("status",), {"code": 503}, ("REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")),
    "http_500": (("status",), {"code": 500}, ("REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")),
    "http_429": (("status",), {"code": 429}, ("REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")),
    "connection_reset": (("reset",), {}, ("REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")),
    "stalled_registry": (("stall",), {}, ("DEADLINE_EXCEEDED",)),
    "slow_registry": (("delay",), {"seconds": 5.0}, ("DEADLINE_EXCEEDED",)),
    "truncated_manifest": (("truncate",), {"only": "/manifests/"}, ("REGISTRY_UNREACHABLE",)),
    "truncated_blob": (("truncate",), {"only": "/blobs/"}, ("REGISTRY_UNREACHABLE",)),
    "503_on_blobs_only": (("status",), {"code": 503, "only": "/blobs/"}, ("REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT_FAULTS))
def test_transient_registry_fault_goes_to_system_error_then_recovers(rig: Rig, fault: str) -> None:
    (mode,), opts, reasons = TRANSIENT_FAULTS[fault]
    other = f"{rig.registry.address}/{rig.repo}@{rig.digest}"  # the same image, not behind the proxy
    rig.proxy.set(mode, **opts)
    try:
        doc, elapsed = rig.ask(rig.key(), other)
        assert elapsed < DEADLINE + SLACK, f"answered after {elapsed:.2f}s"
        assert_transient(doc, rig.key(), *reasons)
        # the healthy key in the same batch is still answered
        assert _items(doc)[other]["value"]["attestations"][0]["verified"] is True, doc
    finally:
        rig.proxy.clear()
    assert_verified(rig, rig.key())


def test_connection_reset_is_always_registry_unreachable(rig: Rig) -> None:
    from stellaops.errors import StellaError
    from stellaops.reference import parse_reference
    from stellaops.registry import RegistryLimits, RegistryPolicy

    rig.proxy.set("reset")
    outcomes = []
    try:
        for _ in range(30):
            with RegistryClient(policy=RegistryPolicy(allow_private=True), limits=RegistryLimits(retries=0)) as client:
                try:
                    client.resolve(parse_reference(rig.key()))
                    outcomes.append("answered")
                except StellaError as exc:
                    outcomes.append(exc.reason)
                except Exception as exc:  # noqa: BLE001 - what this test is about
                    outcomes.append(type(exc).__name__)
    finally:
        rig.proxy.clear()
    assert set(outcomes) == {"REGISTRY_UNREACHABLE"}, outcomes


@pytest.mark.parametrize("only", ["/blobs/", "/manifests/"])
def test_wrong_digest_is_never_verified_and_recovers(rig: Rig, only: str) -> None:
    """A registry (or a man in the middle) serving other bytes for a digest: the bytes are
    refused (REGISTRY_ERROR); the image is answered unverified or with a per-key error,
    never verified."""
    rig.proxy.set("corrupt", only=only)
    try:
        doc, elapsed = rig.ask(rig.key())
    finally:
        rig.proxy.clear()
    assert elapsed < DEADLINE + SLACK
    item = _items(doc).get(rig.key())
    if item is None:
        pytest.fail(f"a digest mismatch is definitive, expected an item: {doc}")
    if item["error"]:
        assert item["error"].startswith("REGISTRY_ERROR"), item
    else:
        assert not [a for a in item["value"]["attestations"] if a["verified"]], item
    assert_verified(rig, rig.key())


def test_registry_process_down_then_restarted(rig: Rig) -> None:
    direct = rig.key(via_proxy=False)
    assert_verified(rig, direct)
    rig.registry.stop()
    try:
        doc, elapsed = rig.ask(direct)
        assert elapsed < DEADLINE + SLACK
        assert_transient(doc, direct, "REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")
        # behind the proxy, the upstream being down looks like a dropped connection
        doc, _ = rig.ask(rig.key())
        assert_transient(doc, rig.key(), "REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")
    finally:
        rig.registry.start()
    assert_verified(rig, direct)
    assert_verified(rig, rig.key())


def _loopback_alias() -> str | None:
    """A name other than localhost that /etc/hosts maps to 127.0.0.1 (so the client uses
    HTTPS for it, while the traffic stays on loopback)."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "127.0.0.1":
            for name in fields[1:]:
                if name != "localhost" and "." not in name and not name.endswith("localhost"):
                    try:
                        if {a[4][0] for a in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)} == {"127.0.0.1"}:
                            return name
                    except OSError:
                        continue
    return None


def test_registry_with_untrusted_tls_certificate_is_never_trusted(rig: Rig, fault_proxy_factory: Any) -> None:
    alias = _loopback_alias()
    if alias is None:
        pytest.skip("no /etc/hosts alias of 127.0.0.1 other than localhost on this machine")
    tls_proxy = fault_proxy_factory(rig.registry.address, tls=True)
    tls_proxy.set("tls")
    key = f"{alias}:{tls_proxy.port}/{rig.repo}@{rig.digest}"
    doc, elapsed = rig.ask(key)
    assert elapsed < DEADLINE + SLACK
    items = _items(doc)
    if key in items:  # definitive: a per-key error, never a verdict
        assert items[key]["error"].startswith(("REGISTRY_UNREACHABLE", "REGISTRY_ERROR")), items[key]
    else:
        assert_transient(doc, key, "REGISTRY_UNREACHABLE")
    assert "certificate" in json.dumps(doc).lower() or "ssl" in json.dumps(doc).lower(), doc


def test_dns_failure_is_transient_and_answered_in_time(rig: Rig) -> None:
    key = f"registry.stellaops.invalid/{rig.repo}@{rig.digest}"
    doc, elapsed = rig.ask(key, rig.key())
    assert elapsed < DEADLINE + SLACK
    assert_transient(doc, key, "REGISTRY_UNREACHABLE")
    assert "resolve" in doc["response"]["systemError"]
    assert _items(doc)[rig.key()]["value"]["attestations"][0]["verified"] is True


# --------------------------------------------------------------------------- the store


def _import(provider: ProviderProcess, token: str, envelope: bytes) -> tuple[int, dict[str, Any]]:
    status, body = provider.post(
        "/api/v1/attestations/import", envelope + b"\n", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    )
    return status, json.loads(body)


def test_postgres_down_is_transient_and_recovers(tmp_path: Path, postgres_server: Any, postgres_dsn: str, ocireg: str) -> None:
    key_ = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "faults/pg", "v1", client=client)
    client.close()
    token = "t0ken-" + "9" * 40
    (tmp_path / "acme.token").write_text(token + "\n")
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")}, store_dsn=postgres_dsn, deadline=DEADLINE)
    cfg += f"importApi: {{tokens: [{{tenant: acme, tokenFile: {tmp_path / 'acme.token'}}}]}}\n"
    env, trip = egress_env(tmp_path)
    provider = start_provider(tmp_path / "provider", cfg, env=env)
    key = f"{ocireg}/faults/pg@{digest}"
    try:
        status, report = _import(provider, token, sign_envelope(statement(digest), [key_]))
        assert status == 200 and report["imported"] == 1, report
        doc = provider.verify(key)
        atts = _items(doc)[key]["value"]["attestations"]
        assert [(a["source"], a["verified"]) for a in atts] == [("imported", True)], doc

        postgres_server.stop()
        started = time.monotonic()
        doc = provider.verify(key)
        elapsed = time.monotonic() - started
        doc.pop("_status")
        assert_provider_response(doc)
        assert elapsed < DEADLINE + SLACK, f"answered after {elapsed:.2f}s"
        assert_transient(doc, key, "STORE_UNAVAILABLE", "DEADLINE_EXCEEDED")
        status, body = provider.get("/readyz")
        assert status == 503, body
        status, report = _import(provider, token, sign_envelope(statement(digest), [key_]))
        assert status == 503 and report["error"]["reason"] == "STORE_UNAVAILABLE", report
        # the store's password never leaves the process, in answers or logs, during the outage
        from tests.fixtures.services import PG_PASSWORD

        for text in (json.dumps(doc), body.decode(), json.dumps(report), provider.log()):
            assert PG_PASSWORD not in text, "the PostgreSQL password leaked"
    finally:
        if not postgres_server.running():
            postgres_server.start()
    deadline = time.monotonic() + 20
    while True:  # the pool reconnects on use
        doc = provider.verify(key)
        item = _items(doc).get(key)
        if item is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    provider.stop()
    assert item is not None, doc
    assert [(a["source"], a["verified"]) for a in item["value"]["attestations"]] == [("imported", True)], doc
    assert not trip.exists() or not trip.read_text()


def test_sqlite_store_locked_answers_in_time(tmp_path: Path, ocireg: str) -> None:
    """Another process holds an exclusive lock on the SQLite store: the provider still answers
    within its deadline (transient for that key), and recovers when the lock is released."""
    import sqlite3

    key_ = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "faults/sqlite", "v1", client=client)
    push_att(client, ocireg, "faults/sqlite", digest, [sign_envelope(statement(digest), [key_])])
    client.close()
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")}, deadline=DEADLINE)
    provider = start_provider(tmp_path / "provider", cfg)
    key = f"{ocireg}/faults/sqlite@{digest}"
    try:
        doc = provider.verify(key)
        assert _items(doc)[key]["value"]["attestations"][0]["verified"] is True
        db = sqlite3.connect(tmp_path / "store.db", timeout=1, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            doc = provider.verify(key)
            elapsed = time.monotonic() - started
            doc.pop("_status")
            assert_provider_response(doc)
            assert elapsed < DEADLINE + SLACK, f"answered after {elapsed:.2f}s"
            item = _items(doc).get(key)
            if item is None:
                assert_transient(doc, key, "STORE_UNAVAILABLE", "DEADLINE_EXCEEDED")
            else:  # answered from the registry alone would be wrong only if it claimed more than it saw
                assert item["value"]["attestations"][0]["verified"] is True
        finally:
            db.execute("ROLLBACK")
            db.close()
        time.sleep(0.2)
        doc = provider.verify(key)
        assert _items(doc)[key]["value"]["attestations"][0]["verified"] is True, doc
    finally:
        provider.stop()


# --------------------------------------------------------------------------- the Rego library


def _opa_provider_errors(rig: Rig, key: str) -> dict[str, str]:
    """``opa eval`` of the library's provider_errors over the http transport, against the provider."""
    import os
    import subprocess

    from tests.fixtures.tools import ROOT, tool

    sources = [p for d in ("rego/lib/stellaops", "rego/transport/http") for p in sorted((ROOT / d).glob("*.rego")) if not p.name.endswith("_test.rego")]
    proc = subprocess.run(
        [tool("opa"), "eval", "--format", "json", *[a for p in sources for a in ("-d", str(p))],
         f"data.lib.stellaops.provider_errors({json.dumps([key])})"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "STELLAOPS_PROVIDER_URL": rig.provider.url},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["result"][0]["expressions"][0]["value"]


@pytest.mark.parametrize("fault", ["registry_down", "http_503", "stalled"])
def test_rego_library_denies_readably_during_a_registry_fault(rig: Rig, fault: str) -> None:
    key = rig.key(via_proxy=fault != "registry_down")
    assert _opa_provider_errors(rig, key) == {}  # the control: no problem when healthy
    if fault == "registry_down":
        rig.registry.stop()
    else:
        rig.proxy.set("status" if fault == "http_503" else "stall", code=503)
    try:
        errors = _opa_provider_errors(rig, key)
    finally:
        rig.proxy.clear()
        if fault == "registry_down":
            rig.registry.start()
    assert list(errors) == [key], errors
    message = errors[key]
    assert f"<{key}>" in message and "retries" in message, message
    assert any(r in message for r in ("REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED")), message
    assert _opa_provider_errors(rig, key) == {}


def test_trickling_registry_cannot_exhaust_the_verification_pool(tmp_path: Path, ocireg: str) -> None:
    key_ = new_key()
    client = loopback_client()
    slow_digest = push_test_image(ocireg, "faults/trickle", "v1", client=client)
    good_digest = push_test_image(ocireg, "faults/healthy", "v1", client=client)
    push_att(client, ocireg, "faults/healthy", good_digest, [sign_envelope(statement(good_digest), [key_])])
    client.close()
    proxy = FaultProxy(ocireg)
    proxy.set("trickle", seconds=0.3, only="/manifests/sha256:")
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")}, deadline=DEADLINE,
                          extra=f"server: {{deadlineSeconds: {DEADLINE}, workers: 1, threads: 8, verifyConcurrency: 4}}\n")  # fmt: skip
    env, _ = egress_env(tmp_path)
    provider = start_provider(tmp_path / "provider", cfg, env=env)
    healthy = f"{ocireg}/faults/healthy@{good_digest}"
    try:
        assert _items(provider.verify(healthy))[healthy]["value"]["attestations"][0]["verified"] is True  # control
        for _ in range(4):  # each request leaves one verification thread reading the trickle
            doc = provider.verify(f"{proxy.address}/faults/trickle@{slow_digest}")
            assert_transient(doc, f"{proxy.address}/faults/trickle@{slow_digest}", "DEADLINE_EXCEEDED", "REGISTRY_UNREACHABLE")
        doc = provider.verify(healthy)
        items = _items(doc)
        assert healthy in items, f"a healthy image timed out behind trickling reads: {doc['response']['systemError']}"
        assert items[healthy]["value"]["attestations"][0]["verified"] is True
    finally:
        proxy.stop()
        provider.stop()


def test_postgres_partition_with_silently_dead_connections_recovers(tmp_path: Path, postgres_dsn: str, ocireg: str) -> None:
    """The store's connections die without a reset (a partition, a NAT drop, a failed-over
    host): queries on them would wait forever. Concurrent admissions during the partition are
    answered within the deadline as transient; after it heals the provider recovers on its own
    (no restart), although the dead connections never answer."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.fixtures.faults import TcpFaultProxy

    key_ = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "faults/pgpart", "v1", client=client)
    push_att(client, ocireg, "faults/pgpart", digest, [sign_envelope(statement(digest), [key_])])
    client.close()
    pg_port = postgres_dsn.rsplit(":", 1)[1].split("/", 1)[0]
    proxy = TcpFaultProxy(f"127.0.0.1:{pg_port}")
    dsn = postgres_dsn.replace(f":{pg_port}/", f":{proxy.port}/")
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")}, store_dsn=dsn,
                          extra=f"server: {{deadlineSeconds: {DEADLINE}, workers: 1, threads: 8, verifyConcurrency: 4}}\n")  # fmt: skip
    env, trip = egress_env(tmp_path)
    provider = start_provider(tmp_path / "provider", cfg, env=env)
    key = f"{ocireg}/faults/pgpart@{digest}"

    def ask() -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        doc = provider.verify(key)
        elapsed = time.monotonic() - started
        doc.pop("_status")
        assert_provider_response(doc)
        return doc, elapsed

    try:
        doc, _ = ask()
        assert _items(doc)[key]["value"]["attestations"][0]["verified"] is True
        proxy.blackhole()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: ask(), range(8)))
        for doc, elapsed in answers:
            assert elapsed < DEADLINE + SLACK, f"answered after {elapsed:.2f}s"
            assert_transient(doc, key, "STORE_UNAVAILABLE", "DEADLINE_EXCEEDED")
        proxy.clear()
        recovered = False
        end = time.monotonic() + 20
        while time.monotonic() < end and not recovered:
            doc, _ = ask()
            item = _items(doc).get(key)
            recovered = item is not None and item["value"]["attestations"][0]["verified"] is True
            if not recovered:
                time.sleep(0.5)
        assert recovered, f"not recovered 20 s after the partition healed: {doc}"
    finally:
        provider.stop()
        proxy.stop()
    assert not trip.exists() or not trip.read_text()


def test_redis_cache_partition_does_not_stop_verification(tmp_path: Path, redis_url: str, ocireg: str) -> None:
    """The verdict cache is an optimisation: with its Redis silently gone, images are still
    verified within the deadline (misses), and the cache is used again after healing."""
    from tests.fixtures.faults import TcpFaultProxy

    key_ = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "faults/redispart", "v1", client=client)
    push_att(client, ocireg, "faults/redispart", digest, [sign_envelope(statement(digest), [key_])])
    client.close()
    port = redis_url.rsplit(":", 1)[1].split("/", 1)[0]
    proxy = TcpFaultProxy(f"127.0.0.1:{port}")
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")})
    cfg = "\n".join(ln for ln in cfg.splitlines() if not ln.startswith("cache:")) + (
        f"\ncache: {{ttlSeconds: 300, negativeTtlSeconds: 30, redisUrl: 'redis://127.0.0.1:{proxy.port}/0'}}\n"
    )
    provider = start_provider(tmp_path / "provider", cfg)
    key = f"{ocireg}/faults/redispart@{digest}"
    try:
        for phase in ("healthy", "partitioned", "partitioned", "healed", "healed"):
            if phase == "partitioned":
                proxy.blackhole()
            elif phase == "healed":
                proxy.clear()
            started = time.monotonic()
            doc = provider.verify(key)
            elapsed = time.monotonic() - started
            assert elapsed < DEADLINE + SLACK, (phase, elapsed)
            item = _items(doc).get(key)
            assert item is not None and item["value"]["attestations"][0]["verified"] is True, (phase, doc)
    finally:
        provider.stop()
        proxy.stop()


def test_big_batch_behind_a_stalled_registry_is_answered_in_time_and_frees_the_pool(rig: Rig) -> None:
    """300 distinct keys on a stalled registry: one answer within the deadline, every key in
    systemError, and the queued work is dropped so the next request is served at once."""
    stalled = [f"{rig.proxy.address}/{rig.repo}:t{i}" for i in range(300)]
    rig.proxy.set("stall")
    try:
        started = time.monotonic()
        status, body = rig.provider.post("/gatekeeper/v1/verify", json.dumps(
            {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": stalled}}).encode())  # fmt: skip
        elapsed = time.monotonic() - started
        doc = json.loads(body)
        assert status == 200 and elapsed < DEADLINE + SLACK, (status, elapsed)
        assert_provider_response(doc)
        assert doc["response"]["items"] == [] and all(k in doc["response"]["systemError"] for k in stalled[:5] + stalled[-5:])
    finally:
        rig.proxy.clear()
    started = time.monotonic()
    assert_verified(rig, rig.key(via_proxy=False))
    assert time.monotonic() - started < DEADLINE + SLACK


def test_import_api_image_resolution_is_bounded_by_a_deadline(tmp_path: Path, ocireg: str) -> None:
    import urllib.error

    proxy = FaultProxy(ocireg)
    proxy.set("stall")
    token = "import-deadline-token-" + "4" * 30
    (tmp_path / "t").write_text(token)
    cfg = provider_config(tmp_path, {}, deadline=DEADLINE, extra=f"importApi: {{tokens: [{{tenant: a, tokenFile: {tmp_path / 't'}}}]}}\n")
    provider = start_provider(tmp_path / "provider", cfg)
    try:
        started = time.monotonic()
        try:
            status, _ = provider.post(f"/api/v1/attestations/import?image={proxy.address}/faults/app:v1", b"{}",
                                      headers={"Authorization": f"Bearer {token}"}, timeout=DEADLINE + SLACK + 1)  # fmt: skip
        except (TimeoutError, urllib.error.URLError) as exc:
            pytest.fail(f"no answer within {DEADLINE + SLACK + 1:.1f}s: {exc}")
        assert time.monotonic() - started < DEADLINE + SLACK and status == 503
    finally:
        proxy.stop()
        provider.stop()
