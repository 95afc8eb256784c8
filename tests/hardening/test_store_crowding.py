"""T-A6c store crowding (issue 16 item 7): one tenant's imports can never hide another tenant's.

Against SQLite and a real PostgreSQL (``postgres_dsn`` from tests/fixtures/services.py):

- one tenant imports 1,000 junk envelopes for a digest, then another tenant imports its genuine
  attestation: the store used to return the oldest 1,000 rows across tenants, so the genuine
  one was never read. The per-tenant budget is now applied in the query, newest first;
- a tenant's rows may use only its share of the byte budget, sizes checked before the bytes
  are loaded;
- at import, at most ``limits.storeRowsPerTenantDigest`` rows per (tenant, digest) are kept:
  the oldest of *that tenant* are pruned, never another tenant's.
"""

from __future__ import annotations

import hashlib

import pytest

from stellaops.candidate import KIND_DSSE
from stellaops.store import StoreFind, open_store


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


D1, D2 = _digest("one"), _digest("two")


@pytest.fixture(params=["sqlite", "postgresql"])
def dsn(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_dsn")


def _put(store, tenant: str, data: bytes, digests=(D1,), **kw):  # type: ignore[no-untyped-def]
    return store.put(
        tenant, data, kind=KIND_DSSE, subject_digests=list(digests), predicate_type="https://slsa.dev/provenance/v1",
        image=None, annotations={}, **kw,
    )  # fmt: skip


def _tenants(cands) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.annotations["dev.stellaops/tenant"] for c in cands]


def test_a_thousand_junk_imports_cannot_hide_another_tenants_attestation(dsn) -> None:  # type: ignore[no-untyped-def]
    # the cap at import is set above 1,000 here: this is the query's own guarantee
    store = open_store(dsn, rows_per_tenant_digest=5000)
    try:
        for i in range(1000):
            _put(store, "junk", b'{"junk":%d}' % i)
        genuine = _put(store, "acme", b'{"genuine":true}')
        # the call discovery made before (one list for every tenant)
        assert f"store:{genuine.id}" in [c.location for c in store.find_by_digest(D1)]
        found = store.find_by_digest(D1, per_tenant=200)
        assert isinstance(found, StoreFind)
        assert f"store:{genuine.id}" in [c.location for c in found.candidates]
        assert _tenants(found.candidates).count("junk") == 200
        assert sorted(_tenants(found.candidates)[:2]) == ["acme", "junk"]  # tenants interleaved, newest first
        assert ("junk", 800, "rows") in found.skipped
        assert not [s for s in found.skipped if s[0] == "acme"]
    finally:
        store.close()


def test_each_tenant_newest_first_and_interleaved(dsn) -> None:  # type: ignore[no-untyped-def]
    store = open_store(dsn)
    try:
        a = [_put(store, "acme", b'{"a":%d}' % i).id for i in range(4)]
        b = [_put(store, "beta", b'{"b":%d}' % i).id for i in range(2)]
        found = store.find_by_digest(D1, per_tenant=3)
        assert [c.location for c in found.candidates] == [f"store:{x}" for x in (a[3], b[1], a[2], b[0], a[1])]
        assert found.skipped == [("acme", 1, "rows")]
    finally:
        store.close()


def test_a_tenant_cannot_use_up_the_byte_budget_of_another(dsn) -> None:  # type: ignore[no-untyped-def]
    store = open_store(dsn)
    try:
        for i in range(10):
            _put(store, "junk", b'{"junk":"' + str(i).encode() + b"x" * 100_000 + b'"}')
        genuine = _put(store, "acme", b'{"genuine":true}')
        found = store.find_by_digest(D1, per_tenant=100, max_bytes=250_000)
        assert f"store:{genuine.id}" in [c.location for c in found.candidates]
        assert sum(len(c.data) for c in found.candidates) <= 250_000
        assert _tenants(found.candidates).count("junk") == 2
        assert ("junk", 8, "bytes") in found.skipped
        # a bigger genuine attestation is not pushed out by another tenant's big rows either
        sbom = _put(store, "beta", b'{"sbom":"' + b"s" * 150_000 + b'"}')
        found = store.find_by_digest(D1, per_tenant=100, max_bytes=260_000)
        assert {f"store:{genuine.id}", f"store:{sbom.id}"} <= {c.location for c in found.candidates}
        assert sum(len(c.data) for c in found.candidates) <= 260_000
    finally:
        store.close()


def test_import_keeps_the_newest_rows_per_tenant_and_digest_and_never_touches_another_tenant(dsn) -> None:  # type: ignore[no-untyped-def]
    store = open_store(dsn, rows_per_tenant_digest=3)
    try:
        beta = _put(store, "beta", b'{"beta":1}')
        both = _put(store, "acme", b'{"both":1}', digests=(D1, D2))
        ids = [_put(store, "acme", b'{"n":%d}' % i) for i in range(4)]
        assert [r.pruned for r in ids] == [0, 0, 1, 1]
        assert [x.id for x in store.list_for_tenant("acme", D1)] == [r.id for r in ids[1:]]
        assert [x.id for x in store.list_for_tenant("beta", D1)] == [beta.id]  # another tenant: untouched
        # an attestation pruned under one digest keeps its other subjects
        assert [x.id for x in store.list_for_tenant("acme", D2)] == [both.id]
        # the import call itself may lower the cap (the import API passes the configured limit)
        extra = _put(store, "acme", b'{"n":99}', keep=1)
        assert extra.pruned == 3 and [x.id for x in store.list_for_tenant("acme", D1)] == [extra.id]
        with store._transaction() as cur:  # no attestation is left without a subject
            cur.execute(
                "SELECT COUNT(*) FROM attestations a WHERE NOT EXISTS"
                " (SELECT 1 FROM attestation_subjects s WHERE s.attestation_id = a.id)"
            )
            assert cur.fetchone()[0] == 0
    finally:
        store.close()


def test_an_import_that_prunes_says_how_many_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import base64
    import json

    from stellaops.importer import import_items, parse_cosign_download

    def envelope(n: int) -> bytes:
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "x", "digest": {"sha256": D1.split(":", 1)[1]}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"n": n},
        }
        payload = base64.b64encode(json.dumps(statement).encode()).decode()
        return json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": payload, "signatures": [{"sig": "AA=="}]}).encode()

    store = open_store(f"sqlite:///{tmp_path}/store.db")
    try:
        reports = [import_items(store, "acme", parse_cosign_download(envelope(n)), keep=2).to_json() for n in range(3)]
        assert [r["results"][0].get("pruned", 0) for r in reports] == [0, 0, 1]
        assert len(store.list_for_tenant("acme", D1)) == 2
    finally:
        store.close()


def test_the_import_api_applies_the_configured_cap_and_reports_what_it_pruned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flask import Flask

    from stellaops import importapi
    from stellaops.config import Config, ImportApiConfig, ImportToken, LimitsConfig, StoreConfig
    from tests.unit.test_import_parse import IMAGE_DIGEST, envelope, statement

    app = Flask("t")
    app.config["STELLAOPS_CONFIG"] = Config(
        store=StoreConfig(dsn=f"sqlite:///{tmp_path}/store.db"),
        import_api=ImportApiConfig(tokens=(ImportToken("acme", b"acme-token-0123456789abcdef"),)),
        limits=LimitsConfig(store_rows_per_tenant_digest=2),
    )
    app.register_blueprint(importapi.bp)
    client = app.test_client()
    try:
        results = []
        for n in range(3):
            body = envelope(statement(predicate={"n": n}))
            resp = client.post(importapi.IMPORT_PATH, data=body, content_type="application/json",
                               headers={"Authorization": "Bearer acme-token-0123456789abcdef"})
            assert resp.status_code == 200, resp.get_json()
            results.append(resp.get_json()["results"][0])
        assert [r["status"] for r in results] == ["imported"] * 3
        assert [r.get("pruned", 0) for r in results] == [0, 0, 1]
        assert [x.id for x in importapi.get_store(app).list_for_tenant("acme", IMAGE_DIGEST)] == [r["id"] for r in results[1:]]
    finally:
        importapi.get_store(app).close()
