"""``imagecheck.within_count_limit`` keeps the NEWEST imports of a tenant over
limits.attestationsPerImage. The store returns each tenant's rows newest first
(``StoreFind``); the limit must keep the head of that order, not its tail, and on an index
each digest's newest before any digest's older ones. Through a real SQLite store."""

from __future__ import annotations

import time
from pathlib import Path

from stellaops.candidate import KIND_DSSE
from stellaops.imagecheck import within_count_limit
from stellaops.store import open_store
from stellaops.verdict import ErrorItem
from tests.hardening._support import SCAN_TYPE, new_key, sign_envelope, statement

INDEX = "sha256:" + "1" * 64
PLATFORM = "sha256:" + "2" * 64


def _import(store, tenant: str, digest: str, n: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    key = new_key()
    out = []
    for i in range(n):
        data = sign_envelope(statement(digest, predicate={"scanner": {"name": "t", "version": str(i)}, "findings": []}), [key])
        store.put(tenant, data, kind=KIND_DSSE, subject_digests=[digest], predicate_type=SCAN_TYPE, image=None, annotations={})
        out.append(data)
        time.sleep(0.002)  # distinct import times (the store orders by them)
    return out


def test_the_newest_imports_of_a_tenant_are_kept(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        imported = _import(store, "acme", INDEX, 4)  # oldest first
        found = store.find_by_digest(INDEX, per_tenant=10)
    finally:
        store.close()
    errors: list[ErrorItem] = []
    kept = within_count_limit(list(found.candidates), INDEX, errors, 2)
    assert [c.data for c in kept] == [imported[3], imported[2]]
    assert [e.reason for e in errors] == ["LIMIT_EXCEEDED"] and "newest" in errors[0].message


def test_on_an_index_each_digest_keeps_its_newest(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        on_index = _import(store, "acme", INDEX, 3)
        on_platform = _import(store, "acme", PLATFORM, 3)
        found = list(store.find_by_digest(INDEX, per_tenant=10).candidates) + list(store.find_by_digest(PLATFORM, per_tenant=10).candidates)
    finally:
        store.close()
    kept = within_count_limit(found, INDEX, [], 2)
    assert sorted(c.data for c in kept) == sorted([on_index[2], on_platform[2]])


def test_tenants_are_budgeted_apart(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        noisy = _import(store, "noisy", INDEX, 3)
        quiet = _import(store, "quiet", INDEX, 1)
        found = store.find_by_digest(INDEX, per_tenant=10)
    finally:
        store.close()
    kept = within_count_limit(list(found.candidates), INDEX, [], 1)
    assert sorted(c.data for c in kept) == sorted([noisy[2], quiet[0]])
