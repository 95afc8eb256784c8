"""The attestation store against SQLite and a real PostgreSQL (same suite, parametrized).

Idempotency, tenant isolation, transactions (a failing insert, a process killed mid-import),
concurrent writers, migrations, and for PostgreSQL an outage and recovery.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from stellaops.candidate import KIND_BUNDLE, KIND_DSSE, SOURCE_IMPORTED
from stellaops.errors import StoreError
from stellaops.store import PutResult, migrations, open_store


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


D1, D2, D_FAIL = digest("one"), digest("two"), digest("fail")


@pytest.fixture(params=["sqlite", "postgresql"])
def dsn(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_dsn")


@pytest.fixture()
def store(dsn):  # type: ignore[no-untyped-def]
    s = open_store(dsn)
    yield s
    s.close()


def put(store, tenant="acme", data=b'{"env":1}', digests=(D1,), **kw) -> PutResult:  # type: ignore[no-untyped-def]
    args = dict(kind=KIND_DSSE, subject_digests=list(digests), predicate_type="https://slsa.dev/provenance/v1", image=None, annotations={})
    args.update(kw)
    return store.put(tenant, data, **args)


def integrity(store) -> None:  # type: ignore[no-untyped-def]
    """No attestation without a subject row and no subject row without its attestation."""
    rows = store._transaction  # the backend's own SQL, not a second driver
    with rows() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM attestations a WHERE NOT EXISTS"
            " (SELECT 1 FROM attestation_subjects s WHERE s.attestation_id = a.id)"
        )
        assert cur.fetchone()[0] == 0, "an attestation row without subjects (half an import)"
        cur.execute(
            "SELECT COUNT(*) FROM attestation_subjects s WHERE NOT EXISTS"
            " (SELECT 1 FROM attestations a WHERE a.id = s.attestation_id)"
        )
        assert cur.fetchone()[0] == 0, "a subject row without its attestation"


# ------------------------------------------------------------------------------- basics
def test_put_then_find_returns_the_exact_bytes_as_imported_candidates(store) -> None:  # type: ignore[no-untyped-def]
    data = b'{"payloadType": "x",  "payload": "",\n "signatures": []}'
    r = put(store, data=data, kind=KIND_BUNDLE, image="127.0.0.1:5000/app:v1", annotations={"org.opencontainers.image.created": "2026-01-01T00:00:00Z"})
    assert r.created
    (c,) = store.find_by_digest(D1)
    assert c.data == data and c.kind == KIND_BUNDLE and c.source == SOURCE_IMPORTED
    assert c.attached_to == D1 and c.location == f"store:{r.id}"
    assert c.annotations["dev.stellaops/tenant"] == "acme"
    assert c.created == "2026-01-01T00:00:00Z"
    assert store.find_by_digest(D2) == []
    store.ping()


def test_candidates_are_oldest_first(store) -> None:  # type: ignore[no-untyped-def]
    ids = [put(store, data=b'{"n":%d}' % i).id for i in range(3)]
    assert [c.location for c in store.find_by_digest(D1)] == [f"store:{i}" for i in ids]


def test_reimport_is_a_no_op_reported_as_not_created(store) -> None:  # type: ignore[no-untyped-def]
    first = put(store)
    again = put(store, data=b'{ "env" : 1 }')  # same document, other whitespace
    assert again == PutResult(id=first.id, created=False)
    assert store.counts() == (1, 1)


def test_same_content_under_a_new_subject_adds_the_subject(store) -> None:  # type: ignore[no-untyped-def]
    first = put(store, digests=(D1,))
    second = put(store, digests=(D1, D2))
    assert second == PutResult(id=first.id, created=True)
    assert [c.location for c in store.find_by_digest(D2)] == [f"store:{first.id}"]
    assert store.counts() == (1, 2)


def test_list_for_tenant_filters_by_tenant_and_digest(store) -> None:  # type: ignore[no-untyped-def]
    a1 = put(store, "acme", b'{"n":1}', (D1, D2))
    put(store, "acme", b'{"n":2}', (D2,))
    put(store, "beta", b'{"n":1}', (D1,))
    listed = store.list_for_tenant("acme")
    assert [x.tenant for x in listed] == ["acme", "acme"]
    assert listed[0].subject_digests == tuple(sorted((D1, D2))) and listed[0].size == len(b'{"n":1}')
    assert [x.id for x in store.list_for_tenant("acme", D1)] == [a1.id]
    assert store.list_for_tenant("nobody") == []


def test_tenants_are_isolated_for_the_same_envelope(store) -> None:  # type: ignore[no-untyped-def]
    a = put(store, "acme")
    b = put(store, "beta")
    assert a.created and b.created and a.id != b.id
    assert sorted(c.annotations["dev.stellaops/tenant"] for c in store.find_by_digest(D1)) == ["acme", "beta"]
    assert {x.id for x in store.list_for_tenant("beta")} == {b.id}


def test_annotations_cannot_claim_another_tenant(store) -> None:  # type: ignore[no-untyped-def]
    put(store, "acme", annotations={"dev.stellaops/tenant": "beta"})
    (c,) = store.find_by_digest(D1)
    assert c.annotations["dev.stellaops/tenant"] == "acme"
    assert store.list_for_tenant("beta") == []


def test_migrations_apply_once_and_reopening_keeps_the_data(dsn) -> None:  # type: ignore[no-untyped-def]
    s = open_store(dsn)
    put(s)
    s.close()
    s = open_store(dsn)
    try:
        assert s.schema_version() == migrations.LATEST
        assert len(s.find_by_digest(D1)) == 1
    finally:
        s.close()


# ------------------------------------------------------------------------------- transactions
def _install_failing_trigger(store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A real database trigger that refuses one subject row, as a failing INSERT would."""
    with store._transaction() as cur:
        if dsn.startswith("sqlite"):
            cur.execute(
                "CREATE TRIGGER fail_subject BEFORE INSERT ON attestation_subjects"
                f" WHEN NEW.digest = '{D_FAIL}' BEGIN SELECT RAISE(ABORT, 'simulated insert failure'); END"
            )
        else:
            cur.execute(
                "CREATE FUNCTION fail_subject() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" IF NEW.digest = '{D_FAIL}' THEN RAISE EXCEPTION 'simulated insert failure'; END IF;"
                " RETURN NEW; END $$"
            )
            cur.execute(
                "CREATE TRIGGER fail_subject BEFORE INSERT ON attestation_subjects"
                " FOR EACH ROW EXECUTE FUNCTION fail_subject()"
            )


def test_a_failing_insert_leaves_no_half_rows(store, dsn) -> None:  # type: ignore[no-untyped-def]
    put(store, data=b'{"kept":1}')
    _install_failing_trigger(store, dsn)
    with pytest.raises(StoreError) as exc:
        put(store, data=b'{"lost":1}', digests=(D1, D2, D_FAIL))
    assert exc.value.reason == "STORE_UNAVAILABLE"
    assert "simulated insert failure" in exc.value.detail
    assert store.counts() == (1, 1)  # the attestation row and the D1/D2 rows were rolled back
    assert store.find_by_digest(D2) == []
    integrity(store)
    assert put(store, data=b'{"after":1}').created  # the store still works


_WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from stellaops.store import open_store
    store = open_store(sys.argv[1])
    shared = "sha256:" + "e" * 64
    for i in range(1_000_000):
        data = ('{"n":%d,"pad":"%s"}' % (i, "x" * 4000)).encode()
        own = "sha256:" + hashlib.sha256(b"%d" % i).hexdigest()
        r = store.put("acme", data, kind="dsse", subject_digests=[own, shared, "sha256:" + "f" * 64],
                      predicate_type="p", image=None, annotations={})
        print(r.id, flush=True)
    """
)


def test_killed_mid_import_keeps_every_acknowledged_row_and_no_half_rows(dsn) -> None:  # type: ignore[no-untyped-def]
    open_store(dsn).close()  # migrated before the writer starts
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, dsn], stdout=subprocess.PIPE, text=True)
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        while len(acked) < 40:
            line = proc.stdout.readline()
            assert line, f"the writer stopped early (rc={proc.poll()})"
            acked.append(line.strip())
    finally:
        proc.kill()  # SIGKILL: no cleanup, possibly mid-transaction
        proc.wait(timeout=30)
    s = open_store(dsn)
    try:
        stored = {x.id: x for x in s.list_for_tenant("acme")}
        assert set(acked) <= set(stored), "an acknowledged import was lost"
        assert all(len(x.subject_digests) == 3 for x in stored.values())
        atts, subs = s.counts()
        assert subs == 3 * atts
        integrity(s)
    finally:
        s.close()


def test_concurrent_identical_imports_store_one_row(dsn) -> None:  # type: ignore[no-untyped-def]
    open_store(dsn).close()
    stores = [open_store(dsn) for _ in range(6)]
    results: list[PutResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def work(s) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            results.append(put(s, data=b'{"same":1}', digests=(D1, D2)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert len({r.id for r in results}) == 1
        assert sum(r.created for r in results) == 1
        assert stores[0].counts() == (1, 2)
    finally:
        for s in stores:
            s.close()


# ------------------------------------------------------------------------------- PostgreSQL outages
def test_postgres_stopped_raises_store_error_then_recovers(postgres_server, postgres_dsn) -> None:  # type: ignore[no-untyped-def]
    s = open_store(postgres_dsn)
    try:
        put(s)
        postgres_server.stop()
        started = time.monotonic()
        with pytest.raises(StoreError) as exc:
            s.find_by_digest(D1)
        assert time.monotonic() - started < 5, "an unavailable database must fail fast"
        assert exc.value.reason == "STORE_UNAVAILABLE" and exc.value.transient
        assert "PostgreSQL" in exc.value.detail and "stella-test-password" not in exc.value.detail
        started = time.monotonic()
        with pytest.raises(StoreError):
            put(s, data=b'{"during":1}')
        assert time.monotonic() - started < 1.5  # known down: refused at once, nothing waits
        postgres_server.start()
        # the same store object recovers by itself (no provider restart): within its
        # fail-fast window (retry_after, 1 s) plus one reconnect
        deadline = time.monotonic() + 10
        while True:
            try:
                found = s.find_by_digest(D1)
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not recover after the restart"
                time.sleep(0.2)
        assert len(found) == 1
        assert put(s, data=b'{"after":1}').created
    finally:
        s.close()


def test_postgres_unreachable_at_open_is_a_store_error(postgres_server) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.services import free_port

    started = time.monotonic()
    with pytest.raises(StoreError) as exc:
        open_store(f"postgresql://stella:stella-test-password@127.0.0.1:{free_port()}/stellaops")
    assert exc.value.reason == "STORE_UNAVAILABLE" and "PostgreSQL" in exc.value.detail
    assert "stella-test-password" not in str(exc.value)
    assert time.monotonic() - started < 5


def test_postgres_wrong_password_is_a_store_error_without_the_password(postgres_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreError) as exc:
        open_store(f"postgresql://stella:wrong-pw@127.0.0.1:{postgres_server.port}/stellaops")
    assert "wrong-pw" not in str(exc.value)


def test_postgres_replicas_migrating_at_once_apply_each_migration_once(postgres_dsn) -> None:  # type: ignore[no-untyped-def]
    stores: list = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        try:
            barrier.wait()
            stores.append(open_store(postgres_dsn))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with stores[0]._transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM schema_migrations")
            assert cur.fetchone()[0] == migrations.LATEST
    finally:
        for s in stores:
            s.close()
