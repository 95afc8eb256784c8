"""gatekeeper.py: ProviderRequest validation and the ProviderResponse envelope (no registry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stellaops.app import create_app
from stellaops.config import parse_config
from stellaops.gatekeeper import parse_provider_request


def _req(keys: object, **over: object) -> bytes:
    doc = {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": keys}}
    doc.update(over)
    return json.dumps(doc).encode()


def test_parses_gatekeepers_exact_request() -> None:
    body = b'{"apiVersion":"externaldata.gatekeeper.sh/v1beta1","kind":"ProviderRequest","request":{"keys":["k1","k2"]}}'
    assert parse_provider_request(body, max_keys=10) == ["k1", "k2"]


@pytest.mark.parametrize(
    "body, match",
    [
        (b"{", "not JSON"),
        (b"[]", "JSON object"),
        (_req(["a"], kind="ProviderResponse"), "kind is 'ProviderResponse'"),
        (_req(["a"], apiVersion="v1"), "apiVersion is 'v1'"),
        (_req("a"), "must be a list of strings"),
        (json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest"}).encode(), "'request' must be an object"),
        (_req(["a"] * 11), "more than the limit of 10"),
    ],
)
def test_rejects_malformed_requests(body: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_provider_request(body, max_keys=10)


@pytest.fixture()
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = parse_config(f"store: {{dsn: 'sqlite:///{tmp_path}/s.db'}}\nserver: {{maxKeyLength: 64}}\n", env={})
    app = create_app(cfg)
    return app.test_client()


def test_malformed_request_is_400_with_system_error(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/gatekeeper/v1/verify", data=b"nope", content_type="application/json")
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["kind"] == "ProviderResponse" and body["apiVersion"] == "externaldata.gatekeeper.sh/v1beta1"
    assert body["response"]["systemError"].startswith("bad ProviderRequest: body is not JSON")
    assert body["response"]["items"] == [] and body["response"]["idempotent"] is True


def test_empty_keys_answer_empty_items(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/gatekeeper/v1/verify", data=_req([]), content_type="application/json")
    assert resp.status_code == 200
    assert resp.get_json()["response"] == {"idempotent": True, "items": [], "systemError": ""}


def test_bad_keys_are_definitive_per_key_errors(client) -> None:  # type: ignore[no-untyped-def]
    long_key = "registry.example.com/" + "a" * 100
    resp = client.post("/gatekeeper/v1/verify", data=_req([7, long_key, "UPPER/Case:x", "UPPER/Case:x"]), content_type="application/json")
    items = {i["key"]: i for i in resp.get_json()["response"]["items"]}
    assert items["7"]["error"].startswith("REQUEST_INVALID: key must be a string")
    assert items[long_key]["error"].startswith("REQUEST_INVALID: key is 121 characters")
    assert items["UPPER/Case:x"]["error"].startswith("INVALID_REFERENCE")
    assert len(resp.get_json()["response"]["items"]) == 3  # duplicates answered once


def test_health_and_openapi(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    assert b"/gatekeeper/v1/verify" in client.get("/openapi.yaml").data
    assert b"stellaops_verdict_cache_total" in client.get("/metrics").data or client.get("/metrics").status_code == 200


def test_unknown_route_is_json_404(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/nope")
    assert resp.status_code == 404 and resp.get_json()["error"]["reason"] == "REQUEST_INVALID"


# --- transient memory (issue 16 item 5) and the response cap (item 6) ----------------------------
def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_client(tmp_path: Path, seconds: float):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    cfg = parse_config(f"store: {{dsn: 'sqlite:///{tmp_path}/s.db'}}\nregistries: {{allowPrivate: true}}\n", env={})
    # set in code: config.py does not accept transientMemorySeconds: 0 yet (its docs say 0 turns it off)
    cfg = replace(cfg, server=replace(cfg.server, transient_memory_seconds=seconds))
    app = create_app(cfg)
    engine = app.extensions["stellaops.engine"]
    calls: list[list[str]] = []
    real = engine.verify_batch

    def counting(keys, **kw):  # type: ignore[no-untyped-def]
        calls.append(list(keys))
        return real(keys, **kw)

    engine.verify_batch = counting
    return app.test_client(), calls


def test_a_transient_key_is_answered_from_memory_with_the_same_system_error(tmp_path: Path) -> None:
    client, calls = _memory_client(tmp_path, 30)
    key = f"127.0.0.1:{_closed_port()}/app:v1"
    first = client.post("/gatekeeper/v1/verify", data=_req([key]), content_type="application/json").get_json()
    second = client.post("/gatekeeper/v1/verify", data=_req([key]), content_type="application/json").get_json()
    assert first["response"]["items"] == [] and key in first["response"]["systemError"]
    assert second["response"] == first["response"]  # the same systemError, nothing cached by Gatekeeper
    assert calls == [[key]]  # the second call did not reach the engine


def test_the_memory_off_calls_the_engine_every_time(tmp_path: Path) -> None:
    client, calls = _memory_client(tmp_path, 0)
    key = f"127.0.0.1:{_closed_port()}/app:v1"
    for _ in range(2):
        client.post("/gatekeeper/v1/verify", data=_req([key]), content_type="application/json")
    assert calls == [[key], [key]]


def test_definitive_answers_are_never_remembered(tmp_path: Path) -> None:
    client, calls = _memory_client(tmp_path, 30)
    key = "127.0.0.1:5000/app@sha256:nothex"  # INVALID_REFERENCE: definitive
    for _ in range(2):
        body = client.post("/gatekeeper/v1/verify", data=_req([key]), content_type="application/json").get_json()
        assert body["response"]["items"][0]["error"].startswith("INVALID_REFERENCE")
    assert calls == [[key], [key]]


def test_transient_memory_expires_is_bounded_and_thread_safe() -> None:
    import threading

    from stellaops.gatekeeper import TransientMemory

    now = [100.0]
    memory = TransientMemory(5, max_keys=3, clock=lambda: now[0])
    memory.remember("a", "A: stalled")
    assert memory.recall("a") == "A: stalled"
    now[0] += 5.0
    assert memory.recall("a") is None  # expired
    for k in "bcde":
        memory.remember(k, k)
    assert len(memory) == 3 and memory.recall("b") is None and memory.recall("e") == "e"
    memory.remember("x", "y" * 10_000)
    assert len(memory.recall("x") or "") <= 1025

    big = TransientMemory(60, max_keys=500)
    threads = [threading.Thread(target=lambda i=i: [big.remember(f"{i}-{j}", "t") for j in range(200)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(big) == 500


def test_response_cap_moves_what_does_not_fit_to_system_error_not_to_cached_items() -> None:
    from stellaops.gatekeeper import _assemble, _item, _system_error

    class V:  # any object with to_json() is a verdict for _item
        def __init__(self, n: int) -> None:
            self.n = n

        def to_json(self) -> dict[str, str]:
            return {"pad": "x" * self.n}

    answered = [(f"k{i}", _item(f"k{i}", V(40_000))) for i in range(10)]
    items, overflow = _assemble(answered, 200_000)
    assert 1 <= len(items) < 10 and len(items) + len(overflow) == 10
    assert sum(len(i) for i in items) + len(items) <= 200_000
    assert all(reason.startswith("LIMIT_EXCEEDED") for _, reason in overflow)
    # one verdict over the whole cap: a definitive per-key error (it never fits, whatever the batch)
    items, overflow = _assemble([("huge", _item("huge", V(500_000)))], 200_000)
    assert overflow == [] and json.loads(items[0])["error"].startswith("LIMIT_EXCEEDED")
    # the systemError text itself is bounded
    from stellaops.gatekeeper import SYSTEM_ERROR_BYTES

    text = _system_error([(f"key-{i}" * 20, "DEADLINE_EXCEEDED " * 10) for i in range(1000)])
    assert len(text.encode()) <= SYSTEM_ERROR_BYTES and "more keys" in text


def test_a_spliced_cached_verdict_over_the_verdict_cap_is_refused_not_sent() -> None:
    from stellaops.engine import CachedVerdict
    from stellaops.gatekeeper import _capped_item

    digest = "sha256:" + "a" * 64
    small = CachedVerdict(image="r/x@" + digest, digest=digest, raw=b'{"schemaVersion":1,"digest":"' + digest.encode() + b'"}')
    assert json.loads(_capped_item("r/x", small, 1024))["value"]["digest"] == digest
    big = CachedVerdict(image="r/x", digest=digest, raw=b'{"schemaVersion":1,"pad":"' + b"x" * 5000 + b'"}')
    item = json.loads(_capped_item("r/x", big, 1024))
    assert item["value"] is None and item["error"].startswith("LIMIT_EXCEEDED") and "verdictBytes" in item["error"]
