"""Versioned schema of the imported-attestation store, one list per SQL dialect.

Each migration is applied once, in order, inside the transaction that records it in
``schema_migrations``; opening a store applies the missing ones (idempotent). Never edit a
released migration: append a new version. The two dialects keep the same tables and columns:

- ``attestations``: one row per (tenant, content digest): the exact bytes imported, their
  kind (``dsse`` | ``bundle``), the statement's predicate type, the image named at import
  (if any), unsigned annotations (JSON) and the import time;
- ``attestation_subjects``: the subject digests an attestation is stored under, the key
  discovery looks up (indexed), one row per (attestation, digest).
"""

from __future__ import annotations

# (version, statements). Statements run in order within one transaction.
SQLITE: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE attestations (
                id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                content_sha256 TEXT NOT NULL,
                data_sha256 TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('dsse', 'bundle')),
                data BLOB NOT NULL,
                predicate_type TEXT NOT NULL,
                image TEXT,
                annotations TEXT NOT NULL,
                created_at TEXT NOT NULL,
                UNIQUE (tenant, content_sha256)
            )""",
            """CREATE TABLE attestation_subjects (
                attestation_id TEXT NOT NULL REFERENCES attestations(id) ON DELETE CASCADE,
                digest TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (attestation_id, digest)
            )""",
            "CREATE INDEX attestation_subjects_digest ON attestation_subjects (digest)",
            "CREATE INDEX attestations_predicate_type ON attestations (predicate_type)",
            "CREATE INDEX attestations_tenant ON attestations (tenant)",
        ),
    ),
]

POSTGRES: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE attestations (
                id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                content_sha256 TEXT NOT NULL,
                data_sha256 TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('dsse', 'bundle')),
                data BYTEA NOT NULL,
                predicate_type TEXT NOT NULL,
                image TEXT,
                annotations JSONB NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                UNIQUE (tenant, content_sha256)
            )""",
            """CREATE TABLE attestation_subjects (
                attestation_id TEXT NOT NULL REFERENCES attestations(id) ON DELETE CASCADE,
                digest TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (attestation_id, digest)
            )""",
            "CREATE INDEX attestation_subjects_digest ON attestation_subjects (digest)",
            "CREATE INDEX attestations_predicate_type ON attestations (predicate_type)",
            "CREATE INDEX attestations_tenant ON attestations (tenant)",
        ),
    ),
]

LATEST = max(v for v, _ in SQLITE)
assert LATEST == max(v for v, _ in POSTGRES), "both dialects must reach the same schema version"
