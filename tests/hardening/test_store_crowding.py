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


# -- T-L24: each tenant's fair share of the byte budget (max-min fair, newest first) ------------


def _sized(tag: str, size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes."""
    head = b'{"' + tag.encode() + b'":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_a_bigger_newest_row_of_another_tenant_cannot_hide_a_tenants_second_newest(dsn) -> None:  # type: ignore[no-untyped-def]
    """T-L24: team-a imports a critical scan, then a bigger SBOM (its newest); a junk tenant's
    newest row is a little bigger than the SBOM and takes what is left after it. team-a's rows
    (302,000 bytes) are within its half of the budget: both must be read, and the junk row,
    over what team-a leaves of the budget, is the one left out."""
    store = open_store(dsn)
    try:
        crit = _put(store, "team-a", _sized("crit", 2_000))
        sbom = _put(store, "team-a", _sized("sbom", 300_000))
        _put(store, "junk", _sized("junk", 699_000))
        found = store.find_by_digest(D1, per_tenant=8, max_bytes=1_000_000)
        assert [c.location for c in found.candidates] == [f"store:{sbom.id}", f"store:{crit.id}"]
        assert found.skipped == [("junk", 1, "bytes")]
    finally:
        store.close()


def test_an_older_row_is_never_read_when_a_newer_row_of_the_same_tenant_was_left_out(dsn) -> None:  # type: ignore[no-untyped-def]
    """T-L24: a tenant's newest (failing, big) scan over its share must not be skipped for an
    older, smaller, clean one: a tenant's rows are read newest first and the first one that does
    not fit ends that tenant's reading."""
    store = open_store(dsn)
    try:
        _put(store, "acme", _sized("clean", 1_000))
        _put(store, "acme", _sized("critical", 200_000))
        junk = _put(store, "junk", _sized("junk", 100_000))
        found = store.find_by_digest(D1, per_tenant=8, max_bytes=150_000)
        assert [c.location for c in found.candidates] == [f"store:{junk.id}"]
        assert found.skipped == [("acme", 2, "bytes")]
        # alone, too: the whole budget is the tenant's, and its newest is still over it
        _put(store, "acme", _sized("clean2", 1_000), digests=(D2,))
        _put(store, "acme", _sized("critical2", 200_000), digests=(D2,))
        found = store.find_by_digest(D2, per_tenant=8, max_bytes=150_000)
        assert found.candidates == [] and found.skipped == [("acme", 2, "bytes")]
    finally:
        store.close()


def test_unused_shares_go_to_the_tenants_that_need_them(dsn) -> None:  # type: ignore[no-untyped-def]
    """Three tenants, 300,000 bytes: a fair third is 100,000 each; small needs 10,000 and mid
    140,000, so what they leave goes to big: its newest 150,000 are read, its second newest (a
    running total of 300,000, over its 150,000) is not. (A regression test of the share
    arithmetic: the greedy pass before the fair split happened to read the same rows here.)"""
    store = open_store(dsn)
    try:
        small = _put(store, "small", _sized("s", 10_000))
        mid = [_put(store, "mid", _sized("m%d" % i, 70_000)) for i in range(2)]
        big = [_put(store, "big", _sized("b%d" % i, 150_000)) for i in range(2)]
        found = store.find_by_digest(D1, per_tenant=8, max_bytes=300_000)
        assert {c.location for c in found.candidates} == {f"store:{x.id}" for x in (small, *mid, big[1])}
        assert found.skipped == [("big", 1, "bytes")]
        assert sum(len(c.data) for c in found.candidates) == 300_000
    finally:
        store.close()


def _water_level(demands: list[int], budget: int) -> "Fraction | None":
    """The max-min fair level: every tenant gets min(demand, level) and the levels fill the
    budget (``None``: every demand fits)."""
    from fractions import Fraction

    left, n = Fraction(budget), len(demands)
    for d in sorted(demands):
        if d * n > left:
            return left / n
        left -= d
        n -= 1
    return None


def test_every_tenant_gets_its_max_min_fair_share_newest_first(dsn) -> None:  # type: ignore[no-untyped-def]
    """A model check over seeded random stores: for each digest and budget,

    - no more than ``max_bytes`` is read;
    - each tenant's rows read are its newest, with no gap (never an older row after a newer one
      left out);
    - every row whose tenant's running total (newest first, up to and including it) is within the
      max-min fair level of the budget is read, whatever the other tenants imported;
    - nothing is wasted: each tenant's first row left out is bigger than what is left unread of
      the budget;
    - ``skipped`` counts exactly what was left out, "rows" over ``per_tenant``, "bytes" the rest.
    """
    import random

    rng = random.Random(24)
    store = open_store(dsn)
    try:
        for case in range(25):
            digest = _digest(f"fair-{case}")
            order: dict[str, list[tuple[str, int]]] = {}
            for tenant in [f"t{i}" for i in range(rng.randint(1, 5))]:
                for _ in range(rng.randint(1, 6)):
                    size = rng.choice([40, 500, 5_000, 20_000, 60_000, rng.randint(40, 90_000)])
                    got = _put(store, tenant, _sized(f"{tenant}-{case}-{rng.random()}", size), digests=(digest,))
                    order.setdefault(tenant, []).insert(0, (f"store:{got.id}", size))  # newest first
            for _ in range(4):
                per_tenant, budget = rng.randint(1, 6), rng.randint(0, 250_000)
                found = store.find_by_digest(digest, per_tenant=per_tenant, max_bytes=budget)
                read = {c.location for c in found.candidates}
                used = sum(len(c.data) for c in found.candidates)
                assert used <= budget, (case, budget, used)
                rows = {t: r[:per_tenant] for t, r in order.items()}
                level = _water_level([sum(s for _, s in r) for r in rows.values()], budget)
                expected_skips = []
                for tenant, r in sorted(rows.items()):
                    taken = [loc in read for loc, _ in r]
                    n = taken.count(True)
                    assert taken == [True] * n + [False] * (len(r) - n), (case, tenant, taken)
                    running = 0
                    for loc, size in r:
                        running += size
                        if level is None or running <= level:
                            assert loc in read, (case, tenant, budget, per_tenant, running, level)
                    if n < len(r):
                        assert r[n][1] > budget - used, (case, tenant, r[n][1], budget - used)
                    if len(order[tenant]) > per_tenant:
                        expected_skips.append((tenant, len(order[tenant]) - per_tenant, "rows"))
                    if n < len(r):
                        expected_skips.append((tenant, len(r) - n, "bytes"))
                assert found.skipped == expected_skips, (case, found.skipped, expected_skips)
                assert read <= {loc for r in rows.values() for loc, _ in r}
    finally:
        store.close()
