"""Versioned schema of the imported-attestation store, one list per SQL dialect.

Each migration is applied once, in order, inside the transaction that records it in
``schema_migrations``; opening a store applies the missing ones (idempotent). Never edit a
released migration: append a new version. The two dialects keep the same tables and columns:

- ``attestations``: one row per (tenant, content digest): the exact bytes imported, their
  kind (``dsse`` | ``bundle``), the statement's predicate type, the image named at import
  (if any), unsigned annotations (JSON) and the import time;
- ``attestation_subjects``: the subject digests an attestation is stored under, the key
  discovery looks up (indexed), one row per (attestation, digest).

Version 2 (issue 16 item 8): ``attestations.size``, the length of ``data`` written at import
(a CHECK keeps it equal), so discovery ranks rows within its byte budget without touching their
bytes (``LENGTH(data)`` inside the window subquery made SQLite copy every row's data into its
sorter). On SQLite the table is rebuilt with ``data`` as its last column: a column stored after a
large blob is reached only by walking the blob's overflow pages, so every metadata read paid for
the bytes. The rebuild is SQLite's documented procedure for a changed table (create the new
table, copy, drop the old, rename): it runs with ``PRAGMA foreign_keys = OFF`` (``sqlite.py``
turns it off around migrations and runs ``foreign_key_check`` before committing), because
dropping the old table with foreign keys on would cascade-delete every subject row. On
PostgreSQL, large values live out of line (TOAST) whatever the column order: a column is added.
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
    (
        2,
        (
            """CREATE TABLE attestations_v2 (
                id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                content_sha256 TEXT NOT NULL,
                data_sha256 TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('dsse', 'bundle')),
                predicate_type TEXT NOT NULL,
                image TEXT,
                annotations TEXT NOT NULL,
                created_at TEXT NOT NULL,
                size INTEGER NOT NULL,
                data BLOB NOT NULL,
                UNIQUE (tenant, content_sha256),
                CONSTRAINT attestations_size_matches CHECK (size = LENGTH(data))
            )""",
            """INSERT INTO attestations_v2 (id, tenant, content_sha256, data_sha256, kind, predicate_type, image,
                annotations, created_at, size, data)
               SELECT id, tenant, content_sha256, data_sha256, kind, predicate_type, image,
                annotations, created_at, LENGTH(data), data FROM attestations""",
            "DROP TABLE attestations",  # with foreign_keys OFF: the subject rows stay
            "ALTER TABLE attestations_v2 RENAME TO attestations",
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
    (
        2,
        (
            "ALTER TABLE attestations ADD COLUMN size BIGINT",
            "UPDATE attestations SET size = octet_length(data)",
            "ALTER TABLE attestations ALTER COLUMN size SET NOT NULL",
            "ALTER TABLE attestations ADD CONSTRAINT attestations_size_matches CHECK (size = octet_length(data))",
        ),
    ),
]

LATEST = max(v for v, _ in SQLITE)
assert LATEST == max(v for v, _ in POSTGRES), "both dialects must reach the same schema version"
