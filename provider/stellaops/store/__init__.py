"""The store of imported attestations: SQLite by default, PostgreSQL for several replicas.

``open_store(dsn)`` returns an :class:`AttestationStore`; the import API and ``stella attest
import`` write into it, and discovery reads it (``find_by_digest`` → :class:`Candidate` with
``source = "imported"``). What the store holds is *unverified*: exactly the bytes imported,
verified at admission like any registry attestation.

Guarantees (both backends, same test suite):

- every ``put`` is one transaction: the attestation row and all its subject rows are written
  together or not at all, and a ``put`` that returned is durable (SQLite ``synchronous=FULL``
  in WAL mode; PostgreSQL commit);
- ``put`` is idempotent on (tenant, content, subject digest): the content digest is sha256 of
  the document's RFC 8785 canonical JSON, so the same envelope re-downloaded with different
  whitespace or key order (Go's protojson output is deliberately unstable) is still a
  duplicate; non-JSON data falls back to sha256 of the bytes;
- tenants are isolated: a tenant's duplicate check and listing never see another tenant's rows;
- failures raise :class:`~stellaops.errors.StoreError` (``STORE_UNAVAILABLE``, transient)
  naming the backend, never the password.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from ..candidate import KIND_BUNDLE, KIND_DSSE, SOURCE_IMPORTED, Candidate
from ..errors import StoreError

ANNOTATION_TENANT = "dev.stellaops/tenant"
ANNOTATION_CREATED = "org.opencontainers.image.created"
KINDS = (KIND_DSSE, KIND_BUNDLE)

MAX_DATA_BYTES = 16 * 1024 * 1024  # one attestation; the import API's body limit is smaller
MAX_RESULTS = 1000  # candidates returned per tenant for one digest (cosign reads at most 1000 layers too)
# rows kept per (tenant, digest) at import (limits.storeRowsPerTenantDigest's default): older ones pruned
ROWS_PER_TENANT_DIGEST = 100
_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")


@dataclass(frozen=True)
class PutResult:
    """``created`` is False when the (tenant, content, subject digests) were all already stored;
    ``pruned`` counts this tenant's older rows unlinked from the digests to keep at most the
    store's rows per (tenant, digest)."""

    id: str
    created: bool
    pruned: int = 0


@dataclass(frozen=True)
class StoreFind:
    """What ``find_by_digest(digest, per_tenant=…, max_bytes=…)`` read for discovery.

    ``candidates``: each tenant's newest ``per_tenant`` rows within its max-min fair share of
    ``max_bytes`` (``max_bytes / tenants``, what a tenant does not need shared out among the
    others; :mod:`._fair`), read newest first up to the first that does not fit (never an older
    row while a newer one of the same tenant is left out), tenants interleaved in the order the
    budget was given out. ``skipped``: (tenant, rows, why) for what was left out: ``"rows"``
    over ``per_tenant``, ``"bytes"`` over the tenant's share of ``max_bytes``.
    """

    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class StoredAttestation:
    """One stored attestation as listed for its tenant (without its bytes)."""

    id: str
    tenant: str
    kind: str
    predicate_type: str
    image: str | None
    subject_digests: tuple[str, ...]
    annotations: dict[str, str]
    created_at: str  # RFC 3339 UTC, the import time
    data_sha256: str
    size: int


@runtime_checkable
class AttestationStore(Protocol):
    """What every backend provides (``SQLiteStore``, ``PostgresStore``)."""

    backend: str

    def put(
        self,
        tenant: str,
        data: bytes,
        *,
        kind: str,
        subject_digests: list[str],
        predicate_type: str,
        image: str | None,
        annotations: dict[str, str],
        keep: int | None = None,
    ) -> PutResult: ...

    def find_by_digest(
        self, digest: str, *, per_tenant: int | None = None, max_bytes: int | None = None, limit: int = MAX_RESULTS
    ) -> "StoreFind | list[Candidate]": ...

    def list_for_tenant(self, tenant: str, digest: str | None = None) -> list[StoredAttestation]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def default_dsn() -> str:
    """``sqlite:///$XDG_DATA_HOME/stellaops/store.db`` (``~/.local/share`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return "sqlite:///" + os.path.abspath(os.path.join(base, "stellaops", "store.db"))


def open_store(dsn: str | None = None, *, rows_per_tenant_digest: int = ROWS_PER_TENANT_DIGEST) -> AttestationStore:
    """Open (creating and migrating as needed) the store named by ``dsn``.

    ``sqlite:///abs/path.db`` (directories created, mode 0700), ``sqlite:///:memory:`` (tests),
    or ``postgresql://user:pass@host:port/db`` (also ``postgres://`` and libpq key=value
    strings starting with ``host=``/``dbname=``). ``None`` or ``""`` means :func:`default_dsn`.
    ``rows_per_tenant_digest`` (``limits.storeRowsPerTenantDigest``): rows kept per (tenant,
    digest) at import, the newest; a ``put`` may lower it for itself (``keep=``).
    """
    dsn = (dsn or "").strip() or default_dsn()
    if not isinstance(rows_per_tenant_digest, int) or rows_per_tenant_digest < 1:
        raise StoreError(
            f"rows per tenant and digest must be a positive integer, got {rows_per_tenant_digest!r}",
            reason="CONFIG_INVALID",
            hint="set limits.storeRowsPerTenantDigest to 1 or more",
        )
    store: Any
    if dsn.startswith("sqlite:"):
        from .sqlite import SQLiteStore

        store = SQLiteStore(sqlite_path(dsn))
    elif dsn.startswith(("postgresql://", "postgres://")) or re.match(r"^(host|dbname|user|port)=", dsn):
        from .postgres import PostgresStore

        store = PostgresStore(dsn)
    else:
        store = None
    if store is not None:
        store.rows_per_tenant_digest = rows_per_tenant_digest
        return store  # type: ignore[no-any-return]
    raise StoreError(
        f"store DSN {redact_dsn(dsn)!r} names no supported backend",
        reason="CONFIG_INVALID",
        hint="use sqlite:///absolute/path.db or postgresql://user:password@host:5432/dbname",
    )


def sqlite_path(dsn: str) -> str:
    """The file path of a ``sqlite:///abs/path`` DSN (``:memory:`` kept as is)."""
    rest = dsn[len("sqlite:") :]
    if rest in ("///:memory:", "//:memory:", ":memory:"):
        return ":memory:"
    if not rest.startswith("///"):
        raise StoreError(
            f"SQLite DSN {dsn!r} must be sqlite:/// followed by an absolute path",
            reason="CONFIG_INVALID",
            hint="e.g. sqlite:///var/lib/stellaops/store.db",
        )
    path = rest[2:]
    if path.startswith("/~"):
        path = os.path.expanduser(path[1:])
    return os.path.abspath(path)


def redact_dsn(dsn: str) -> str:
    """A DSN fit for messages and logs: any password replaced by ``***``."""
    dsn = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", dsn)


def content_digest(data: bytes) -> str:
    """sha256 of the RFC 8785 canonical form of a JSON document; of the bytes otherwise.

    Identifies "the same envelope" across re-serialisations (whitespace, key order), which is
    what makes re-importing a no-op.
    """
    try:
        import rfc8785

        canonical = rfc8785.dumps(json.loads(data))
    except Exception:  # not JSON, or outside RFC 8785's number range: fall back to the bytes
        canonical = bytes(data)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_tenant(tenant: str) -> None:
    """Refuse a tenant name the store would not accept (``REQUEST_INVALID``)."""
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise StoreError(
            f"tenant {tenant!r} is not a valid tenant name",
            reason="REQUEST_INVALID",
            hint="use letters, digits and . _ : @ / - (at most 128 characters, starting with a letter or digit)",
        )


def check_put(
    tenant: str,
    data: bytes,
    kind: str,
    subject_digests: list[str],
    predicate_type: str,
    image: str | None,
    annotations: dict[str, str],
) -> list[str]:
    """Validate ``put``'s arguments (raising ``StoreError`` with ``REQUEST_INVALID``);
    returns the subject digests de-duplicated, in order."""

    def bad(detail: str) -> StoreError:
        return StoreError(detail, reason="REQUEST_INVALID", hint="this is a caller bug; report it")

    check_tenant(tenant)
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise bad("attestation data must be non-empty bytes")
    if len(data) > MAX_DATA_BYTES:
        raise StoreError(
            f"attestation is {len(data)} bytes, more than the store's limit of {MAX_DATA_BYTES}",
            reason="LIMIT_EXCEEDED",
        )
    if kind not in KINDS:
        raise bad(f"kind {kind!r} is not one of {list(KINDS)}")
    if not isinstance(predicate_type, str) or not predicate_type or len(predicate_type) > 1024:
        raise bad("predicate_type must be a non-empty string of at most 1024 characters")
    if image is not None and (not isinstance(image, str) or len(image) > 4096):
        raise bad("image must be a string of at most 4096 characters or None")
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise bad("annotations must map strings to strings")
    digests: list[str] = []
    for d in subject_digests:
        if not isinstance(d, str) or not _DIGEST.match(d):
            raise bad(f"subject digest {d!r} is not of the form sha256:<64 lowercase hex>")
        if d not in digests:
            digests.append(d)
    if not digests:
        raise bad("an attestation must be stored under at least one subject digest")
    return digests


def check_digest(digest: str) -> None:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise StoreError(
            f"{digest!r} is not a digest of the form sha256:<64 lowercase hex>",
            reason="REQUEST_INVALID",
        )


@dataclass
class Row:
    """A row as both backends read it (internal)."""

    id: str
    tenant: str
    kind: str
    predicate_type: str
    image: str | None
    annotations: dict[str, str]
    created_at: str
    data: bytes = b""
    data_sha256: str = ""
    size: int = 0
    subjects: list[str] = field(default_factory=list)


def to_candidate(row: Row, digest: str) -> Candidate:
    """The discovery view of a stored row; the tenant annotation always comes from the row."""
    annotations = dict(row.annotations)
    annotations[ANNOTATION_TENANT] = row.tenant
    return Candidate(
        kind=row.kind,
        data=bytes(row.data),
        source=SOURCE_IMPORTED,
        attached_to=digest,
        location=f"store:{row.id}",
        annotations=annotations,
        created=annotations.get(ANNOTATION_CREATED) or row.created_at,
    )


def to_stored(row: Row) -> StoredAttestation:
    annotations = dict(row.annotations)
    annotations[ANNOTATION_TENANT] = row.tenant
    return StoredAttestation(
        id=row.id,
        tenant=row.tenant,
        kind=row.kind,
        predicate_type=row.predicate_type,
        image=row.image,
        subject_digests=tuple(sorted(row.subjects)),
        annotations=annotations,
        created_at=row.created_at,
        data_sha256=row.data_sha256,
        size=row.size,
    )


def load_annotations(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    try:
        doc = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


__all__ = [
    "AttestationStore",
    "PutResult",
    "StoreFind",
    "StoredAttestation",
    "open_store",
    "default_dsn",
    "content_digest",
    "redact_dsn",
    "ANNOTATION_TENANT",
]
