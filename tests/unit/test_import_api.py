"""POST /api/v1/attestations/import on a bare Flask app with only the import blueprint.

Authentication (bearer token → tenant), limits, content types, per-document results and
status codes. The store is a real SQLite file; the app opens it lazily from the config.
"""

from __future__ import annotations

import hmac
import io
import json
import logging

import pytest
from flask import Flask

from stellaops import importapi
from stellaops.config import Config, ImportApiConfig, ImportToken, StoreConfig
from stellaops.importapi import IMPORT_PATH, get_store
from tests.unit.test_import_parse import (
    IMAGE_DIGEST,
    OTHER_DIGEST,
    bundle,
    cosign_output,
    envelope,
    statement,
)

TOKEN_A = b"acme-token-0123456789abcdef"
TOKEN_B = b"beta-token-0123456789abcdef"
TOKEN_C = b"cara-token-0123456789abcdef"


def make_app(tmp_path, *, tokens=None, max_body=None):  # type: ignore[no-untyped-def]
    if tokens is None:
        tokens = (ImportToken("acme", TOKEN_A), ImportToken("beta", TOKEN_B), ImportToken("cara", TOKEN_C))
    api = ImportApiConfig(tokens=tuple(tokens), **({"max_body_bytes": max_body} if max_body else {}))
    app = Flask("t")
    app.config["STELLAOPS_CONFIG"] = Config(store=StoreConfig(dsn=f"sqlite:///{tmp_path}/store.db"), import_api=api)
    app.register_blueprint(importapi.bp)
    return app


@pytest.fixture()
def app(tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(tmp_path)
    yield app
    store = app.extensions.get("stellaops.store")
    if store is not None:
        store.close()


@pytest.fixture()
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def post(client, body: bytes, token: bytes | None = TOKEN_A, ctype="application/json", query="", headers=None):  # type: ignore[no-untyped-def]
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token.decode()
    return client.post(IMPORT_PATH + query, data=body, headers=h, content_type=ctype)


# ------------------------------------------------------------------------------- authentication
def test_bare_curl_of_the_seed_gets_401_saying_how_to_pass_a_token(client) -> None:  # type: ignore[no-untyped-def]
    # curl -X POST …/api/v1/attestations/import -H "Content-Type: application/json" -d @attestation.json
    resp = post(client, cosign_output(bundle(), envelope()).replace(b"\n", b""), token=None)
    assert resp.status_code == 401
    body = resp.get_json()
    assert body["error"]["reason"] == "UNAUTHORIZED"
    assert "Authorization: Bearer <token>" in body["error"]["hint"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert get_store(client.application).counts() == (0, 0)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token-0123456789abcdef",
        "Bearer " + TOKEN_A.decode()[:-1],
        "Bearer " + TOKEN_A.decode() + "x",
        "Basic " + TOKEN_A.decode(),
        TOKEN_A.decode(),
        "Bearer",
        "Bearer ",
    ],
)
def test_rejects_a_token_that_matches_no_tenant(client, header) -> None:  # type: ignore[no-untyped-def]
    resp = client.post(IMPORT_PATH, data=envelope(), headers={"Authorization": header}, content_type="application/json")
    assert resp.status_code == 401 and resp.get_json()["error"]["reason"] == "UNAUTHORIZED"
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert get_store(client.application).counts() == (0, 0)


def test_no_tokens_configured_refuses_everyone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = make_app(tmp_path, tokens=()).test_client()
    assert post(client, envelope()).status_code == 401


@pytest.mark.parametrize("token", [TOKEN_A, TOKEN_C, b"not-a-token-0123456789abcdef"])
def test_every_token_is_compared_in_constant_time_without_early_exit(client, monkeypatch, token) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(importapi.hmac, "compare_digest", counting)
    post(client, envelope(), token=token)
    assert len(calls) == 3  # all three tenants' tokens, whichever matched (or none)
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests: lengths never differ


def test_the_tenant_comes_from_the_token(client) -> None:  # type: ignore[no-untyped-def]
    assert post(client, envelope(), token=TOKEN_B).get_json()["tenant"] == "beta"
    store = get_store(client.application)
    assert [a.tenant for a in store.list_for_tenant("beta")] == ["beta"]
    assert store.list_for_tenant("acme") == []


def test_a_tenant_query_parameter_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, envelope(), token=TOKEN_A, query="?tenant=beta")
    assert resp.status_code == 400 and "token" in resp.get_json()["error"]["hint"]
    assert get_store(client.application).counts() == (0, 0)


def test_tenant_a_cannot_see_or_dedupe_against_tenant_b(client) -> None:  # type: ignore[no-untyped-def]
    e = envelope()
    b_result = post(client, e, token=TOKEN_B).get_json()["results"][0]
    a_result = post(client, e, token=TOKEN_A).get_json()["results"][0]
    # A learns nothing about B's rows: its import is new, with its own id
    assert a_result["status"] == "imported" and a_result["id"] != b_result["id"]
    store = get_store(client.application)
    assert {a.id for a in store.list_for_tenant("acme")} == {a_result["id"]}
    tenants = sorted(c.annotations["dev.stellaops/tenant"] for c in store.find_by_digest(IMAGE_DIGEST))
    assert tenants == ["acme", "beta"]


# ------------------------------------------------------------------------------- body handling
def test_imports_bundles_and_envelopes_with_per_document_results(client) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, cosign_output(bundle(), envelope()), ctype="application/x-ndjson")
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["imported"], body["duplicates"], body["errors"]) == (2, 0, 0)
    assert [r["kind"] for r in body["results"]] == ["bundle", "dsse"]
    r = body["results"][0]
    assert r["status"] == "imported" and r["subjects"] == [IMAGE_DIGEST] and r["predicateType"].startswith("https://slsa")
    again = post(client, cosign_output(bundle(), envelope())).get_json()
    assert [x["status"] for x in again["results"]] == ["imported", "imported"]  # new signatures: new documents
    same = cosign_output(envelope(), envelope())
    post(client, same)
    assert post(client, same).get_json()["duplicates"] == 2


def test_reimporting_the_same_body_is_a_no_op(client) -> None:  # type: ignore[no-untyped-def]
    body = cosign_output(bundle(), envelope())
    first = post(client, body).get_json()
    second = post(client, body).get_json()
    assert second["duplicates"] == 2 and second["imported"] == 0
    assert [r["id"] for r in second["results"]] == [r["id"] for r in first["results"]]
    assert get_store(client.application).counts() == (2, 2)


def test_malformed_lines_get_400_with_each_line(client) -> None:  # type: ignore[no-untyped-def]
    e = envelope()
    resp = post(client, e + b"\n{\"payload\": \n" + e + b"\nxyz\n")
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"]["reason"] == "REQUEST_INVALID"
    assert [p["line"] for p in body["problems"]] == [2, 4]
    assert get_store(client.application).counts() == (0, 0)  # nothing stored from a broken body


def test_empty_body_is_400(client) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, b"")
    assert resp.status_code == 400 and resp.get_json()["error"]["reason"] == "NO_ATTESTATION"


def test_some_documents_refused_is_200_with_error_results(client) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, cosign_output(envelope(), b'{"hello":"world"}'))
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["imported"], body["errors"]) == (1, 1)
    assert body["results"][1]["error"]["reason"] == "MALFORMED_ENVELOPE"


def test_every_document_refused_is_422(client) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, cosign_output(b'{"hello":"world"}', envelope(payload_type="text/plain")))
    assert resp.status_code == 422
    assert [r["error"]["reason"] for r in resp.get_json()["results"]] == ["MALFORMED_ENVELOPE", "PAYLOAD_TYPE_INVALID"]


def test_image_pinned_by_digest_checks_each_subject(client) -> None:  # type: ignore[no-untyped-def]
    body = cosign_output(envelope(statement([OTHER_DIGEST])), bundle())
    resp = post(client, body, query=f"?image=127.0.0.1:5000/demo/app@{IMAGE_DIGEST}")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["digest"] == IMAGE_DIGEST
    assert [r["status"] for r in doc["results"]] == ["error", "imported"]
    assert doc["results"][0]["error"]["reason"] == "SUBJECT_MISMATCH"


def test_digest_query_checks_each_subject(client) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, envelope(), query=f"?digest={OTHER_DIGEST}")
    assert resp.status_code == 422 and resp.get_json()["results"][0]["error"]["reason"] == "SUBJECT_MISMATCH"


def test_invalid_image_reference_is_400(client) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, envelope(), query="?image=NOT%20A%20REF")
    assert resp.status_code == 400 and resp.get_json()["error"]["reason"] == "INVALID_REFERENCE"


def test_unknown_query_parameter_is_400(client) -> None:  # type: ignore[no-untyped-def]
    assert post(client, envelope(), query="?imgae=x").status_code == 400


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain", ""])
def test_other_content_types_are_415(client, ctype) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, envelope(), ctype=ctype)
    assert resp.status_code == 415 and "application/json" in resp.get_json()["error"]["message"]


def test_body_over_the_limit_is_413(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, max_body=1000)
    client = app.test_client()
    resp = post(client, cosign_output(envelope(), envelope()))
    assert resp.status_code == 413 and resp.get_json()["error"]["reason"] == "LIMIT_EXCEEDED"
    assert post(client, envelope()).status_code == 200  # one envelope fits


def test_streamed_body_without_length_over_the_limit_is_413(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, max_body=1000)
    body = cosign_output(envelope(), envelope(), envelope())
    resp = app.test_client().post(
        IMPORT_PATH,
        headers={"Authorization": "Bearer " + TOKEN_A.decode(), "Content-Type": "application/json"},
        environ_overrides={"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert resp.status_code == 413
    assert get_store(app).counts() == (0, 0)


def test_unauthenticated_big_body_is_401_not_413(tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = make_app(tmp_path, max_body=100).test_client()
    assert post(client, envelope(), token=None).status_code == 401


def test_store_unavailable_is_503_with_retry_after(app, client) -> None:  # type: ignore[no-untyped-def]
    get_store(app).close()
    resp = post(client, envelope())
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert resp.get_json()["error"]["reason"] == "STORE_UNAVAILABLE"


def test_logs_never_carry_tokens_or_envelopes(client, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    e = envelope()
    post(client, e)
    post(client, e, token=b"wrong-secret-value-0123456789")
    text = "\n".join(f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records)
    assert "attestations imported" in text
    for secret in (TOKEN_A.decode(), "wrong-secret-value", json.loads(e)["payload"][:40], json.loads(e)["signatures"][0]["sig"][:20]):
        assert secret not in text


def test_image_on_a_loopback_registry_is_refused_unless_allowed(client) -> None:  # type: ignore[no-untyped-def]
    # registries.allowPrivate is false by default: the provider must not be steered at
    # loopback/private addresses by an import (refused before connecting; loopback only here)
    from tests.fixtures.services import free_port

    resp = post(client, envelope(), query=f"?image=127.0.0.1:{free_port()}/demo/app:v1")
    assert resp.status_code == 400 and resp.get_json()["error"]["reason"] == "REGISTRY_NOT_ALLOWED"
    assert get_store(client.application).counts() == (0, 0)


def test_unauthenticated_request_never_reaches_the_registry(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def fail() -> None:
        raise AssertionError("the registry must not be asked before authentication")

    monkeypatch.setattr(importapi, "_registry_client", fail)
    assert post(client, envelope(), token=None, query="?image=127.0.0.1:5000/demo/app:v1").status_code == 401
    assert post(client, envelope(), token=b"x" * 30, query="?image=127.0.0.1:5000/demo/app:v1").status_code == 401
