"""The store's DSN handling, validation and SQLite specifics (no server needed).

The behaviour shared by both backends (idempotency, transactions, tenants, outages) is in
tests/integration/test_store.py, run against SQLite and a real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from stellaops.errors import StoreError
from stellaops.store import content_digest, default_dsn, migrations, open_store, redact_dsn, sqlite_path

D1 = "sha256:" + "1" * 64


def _put(store, tenant="acme", data=b'{"a":1}', **kw):  # type: ignore[no-untyped-def]
    args = dict(kind="dsse", subject_digests=[D1], predicate_type="p", image=None, annotations={})
    args.update(kw)
    return store.put(tenant, data, **args)


def test_default_dsn_is_under_xdg_data_home(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_dsn() == f"sqlite:///{tmp_path}/stellaops/store.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_dsn() == f"sqlite:///{tmp_path}/home/.local/share/stellaops/store.db"


def test_empty_dsn_opens_the_default_store_creating_directories(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = open_store("")
    try:
        _put(store)
    finally:
        store.close()
    path = tmp_path / "data" / "stellaops" / "store.db"
    assert path.exists()
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_sqlite_dsn_forms() -> None:
    assert sqlite_path("sqlite:///var/lib/x.db") == "/var/lib/x.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(StoreError) as exc:
        sqlite_path("sqlite://relative.db")
    assert exc.value.reason == "CONFIG_INVALID"


def test_unknown_scheme_is_a_config_error_without_the_password() -> None:
    with pytest.raises(StoreError) as exc:
        open_store("mysql://root:hunter2@db/x")
    assert exc.value.reason == "CONFIG_INVALID" and "hunter2" not in str(exc.value)


def test_redact_dsn_hides_passwords() -> None:
    assert redact_dsn("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert "secret" not in redact_dsn("host=h password=secret dbname=d")


def test_content_digest_ignores_whitespace_and_key_order_but_not_content() -> None:
    a = content_digest(b'{"b":1,"a":[1,2]}')
    assert a == content_digest(b'{ "a": [1, 2],\n "b": 1 }')
    assert a != content_digest(b'{"b":1,"a":[2,1]}')
    assert content_digest(b"\xffnot json") == content_digest(b"\xffnot json")


@pytest.mark.parametrize(
    "kw",
    [
        {"tenant": ""},
        {"tenant": "a b"},
        {"tenant": "x" * 200},
        {"data": b""},
        {"kind": "tarball"},
        {"subject_digests": []},
        {"subject_digests": ["sha256:ABC"]},
        {"subject_digests": ["md5:" + "0" * 32]},
        {"predicate_type": ""},
        {"annotations": {"k": 1}},
    ],
)
def test_put_refuses_invalid_arguments(tmp_path, kw) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        with pytest.raises(StoreError) as exc:
            _put(store, **kw)
        assert exc.value.reason == "REQUEST_INVALID"
        assert store.counts() == (0, 0)
    finally:
        store.close()


def test_find_refuses_a_malformed_digest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        with pytest.raises(StoreError) as exc:
            store.find_by_digest("sha256:' OR 1=1 --")
        assert exc.value.reason == "REQUEST_INVALID"
    finally:
        store.close()


def test_sqlite_uses_wal_and_migrations_are_idempotent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dsn = f"sqlite:///{tmp_path}/s.db"
    open_store(dsn).close()
    store = open_store(dsn)
    try:
        assert store.schema_version() == migrations.LATEST
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == migrations.LATEST
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"attestation_subjects_digest", "attestations_predicate_type"} <= indexes
    conn.close()


def test_refuses_a_store_written_by_a_newer_release(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dsn = f"sqlite:///{tmp_path}/s.db"
    open_store(dsn).close()
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'later')", (migrations.LATEST + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as exc:
        open_store(dsn)
    assert exc.value.reason == "CONFIG_INVALID" and "newer" in exc.value.detail


def test_unwritable_location_names_the_backend_and_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError) as exc:
        open_store(f"sqlite:///{blocker}/sub/s.db")
    assert exc.value.reason == "STORE_UNAVAILABLE" and exc.value.transient
    assert "SQLite" in exc.value.detail and str(blocker) in exc.value.detail


def test_annotations_are_stored_as_json_and_tenant_annotation_cannot_be_spoofed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        _put(store, annotations={"dev.stellaops/tenant": "other", "k": "v"})
        (cand,) = store.find_by_digest(D1)
        assert cand.annotations == {"dev.stellaops/tenant": "acme", "k": "v"}
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert json.loads(conn.execute("SELECT annotations FROM attestations").fetchone()[0])["k"] == "v"
    conn.close()


def test_find_by_digest_budgets_are_checked_and_zero_reads_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stellaops.store import StoreFind

    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        for i in range(3):
            _put(store, data=b'{"n":%d}' % i)
        none = store.find_by_digest(D1, per_tenant=0)
        assert none == StoreFind(candidates=[], skipped=[("acme", 3, "rows")])
        assert store.find_by_digest(D1, per_tenant=5, max_bytes=0).skipped == [("acme", 3, "bytes")]
        with pytest.raises(StoreError) as exc:
            store.find_by_digest(D1, per_tenant=-1)
        assert exc.value.reason == "REQUEST_INVALID"
        with pytest.raises(StoreError):
            open_store(f"sqlite:///{tmp_path}/t.db", rows_per_tenant_digest=0)
    finally:
        store.close()
