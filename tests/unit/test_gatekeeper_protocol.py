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
