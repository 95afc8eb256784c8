"""Schema migration 2 (issue 16 item 8), against SQLite and a real PostgreSQL: each row's size
in a column written at import (read instead of ``LENGTH(data)``), and on SQLite the bytes stored
after every metadata column. A store written by schema 1 is migrated in place: every row, its
subjects, sizes and bytes kept; the subjects' foreign key and its cascade still hold.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from stellaops.candidate import KIND_DSSE
from stellaops.store import migrations, open_store


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


D1, D2 = _digest("one"), _digest("two")
BIG = b'{"big":"' + b"y" * 300_000 + b'"}'


@pytest.fixture(params=["sqlite", "postgresql"])
def dsn(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_dsn")


def _connect(dsn: str) -> Any:
    if dsn.startswith("sqlite"):
        import sqlite3

        return sqlite3.connect(dsn[len("sqlite:///") - 1 :])
    import psycopg

    return psycopg.connect(dsn)


def _schema_1(dsn: str) -> None:
    """A store as release with schema version 1 left it: two rows, one under two digests."""
    sqlite = dsn.startswith("sqlite")
    ph = "?" if sqlite else "%s"
    statements = dict(migrations.SQLITE if sqlite else migrations.POSTGRES)[1]
    conn = _connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for statement in statements:
            cur.execute(statement)
        cur.execute(f"INSERT INTO schema_migrations VALUES ({ph}, {ph})", (1, "2026-01-01T00:00:00Z"))
        when = "2026-01-01T00:00:0%dZ"
        for i, (att_id, data, digests) in enumerate([("a1", b'{"small":1}', [D1]), ("a2", BIG, [D1, D2])]):
            cur.execute(
                "INSERT INTO attestations (id, tenant, content_sha256, data_sha256, kind, data, predicate_type, image,"
                f" annotations, created_at) VALUES ({', '.join([ph] * 10)})",
                (att_id, "acme", "sha256:c" + att_id, "sha256:d" + att_id, KIND_DSSE, data, "p", None, '{"k":"v"}', when % i),
            )
            for d in digests:
                cur.execute(f"INSERT INTO attestation_subjects VALUES ({ph}, {ph}, {ph})", (att_id, d, when % i))
        conn.commit()
    finally:
        conn.close()


def test_a_schema_1_store_is_migrated_keeping_every_row(dsn: str) -> None:
    _schema_1(dsn)
    store = open_store(dsn)
    try:
        assert store.schema_version() == migrations.LATEST >= 2
        found = store.find_by_digest(D1, per_tenant=10)
        assert sorted(c.data for c in found.candidates) == sorted([b'{"small":1}', BIG])
        assert all(c.annotations == {"k": "v", "dev.stellaops/tenant": "acme"} for c in found.candidates)
        assert [c.data for c in store.find_by_digest(D2, per_tenant=10).candidates] == [BIG]
        sizes = {s.id: (s.size, s.subject_digests) for s in store.list_for_tenant("acme")}
        assert sizes == {"a1": (len(b'{"small":1}'), (D1,)), "a2": (len(BIG), tuple(sorted([D1, D2])))}
        # the size column is what the byte budget reads: the newest (big) row fits alone, not with
        # the older small one; under it, nothing is read (never the older row without the newer)
        budget = store.find_by_digest(D1, per_tenant=10, max_bytes=len(BIG))
        assert [c.location for c in budget.candidates] == ["store:a2"] and budget.skipped == [("acme", 1, "bytes")]
        budget = store.find_by_digest(D1, per_tenant=10, max_bytes=len(BIG) - 1)
        assert budget.candidates == [] and budget.skipped == [("acme", 2, "bytes")]
        # pruning (keep 1) unlinks the old rows through the migrated foreign key, deleting those under no digest
        store.put("acme", b'{"new":1}', kind=KIND_DSSE, subject_digests=[D1], predicate_type="p", image=None, annotations={}, keep=1)
        assert [c.data for c in store.find_by_digest(D1, per_tenant=10).candidates] == [b'{"new":1}']
        assert [c.data for c in store.find_by_digest(D2, per_tenant=10).candidates] == [BIG]
        assert store.counts() == (2, 2)
    finally:
        store.close()
    _check_schema(dsn)


def test_a_new_store_writes_sizes_at_import(dsn: str) -> None:
    store = open_store(dsn)
    try:
        store.put("acme", BIG, kind=KIND_DSSE, subject_digests=[D1], predicate_type="p", image=None, annotations={})
        (listed,) = store.list_for_tenant("acme")
        assert listed.size == len(BIG)
        with store._transaction(write=False) as cur:
            cur.execute("SELECT size FROM attestations")
            assert cur.fetchone()[0] == len(BIG)
    finally:
        store.close()
    _check_schema(dsn)


def _check_schema(dsn: str) -> None:
    if not dsn.startswith("sqlite"):
        return
    conn = _connect(dsn)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(attestations)")]
        assert columns[-1] == "data" and "size" in columns, columns  # the bytes after every metadata column
        assert [r[2] for r in conn.execute("PRAGMA foreign_key_list(attestation_subjects)")] == ["attestations"]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"attestation_subjects_digest", "attestations_predicate_type", "attestations_tenant"} <= indexes
    finally:
        conn.close()


def test_a_sqlite_store_whose_migration_would_break_a_foreign_key_is_refused_unchanged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dsn = f"sqlite:///{tmp_path}/store.db"
    _schema_1(dsn)
    conn = _connect(dsn)
    conn.execute("INSERT INTO attestation_subjects VALUES ('gone', ?, '2026-01-01T00:00:00Z')", (D2,))  # FKs off here
    conn.commit()
    conn.close()
    from stellaops.errors import StoreError

    with pytest.raises(StoreError) as info:
        open_store(dsn)
    assert info.value.reason == "CONFIG_INVALID" and "foreign key" in info.value.detail
    conn = _connect(dsn)
    try:  # rolled back: still schema 1, every row there
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM attestations").fetchone()[0] == 2
        assert "size" not in [r[1] for r in conn.execute("PRAGMA table_info(attestations)")]
    finally:
        conn.close()
