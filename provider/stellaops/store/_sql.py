"""The store's logic, shared by the SQLite and PostgreSQL backends (one SQL text, two drivers).

A backend supplies ``_transaction()`` (a cursor inside one transaction, committed on a clean
exit and rolled back otherwise, driver errors turned into ``StoreError``), the placeholder
style and how it encodes times and JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from typing import Any, Iterator

from ..candidate import Candidate
from . import (
    MAX_RESULTS,
    PutResult,
    Row,
    StoredAttestation,
    check_digest,
    check_put,
    content_digest,
    load_annotations,
    to_candidate,
    to_stored,
    utcnow,
)

_COLUMNS = "a.id, a.tenant, a.kind, a.predicate_type, a.image, a.annotations, a.created_at"


class SQLStore:
    backend = "sql"
    placeholder = "?"

    # -- backend hooks -------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def _encode_time(self, iso: str) -> Any:
        return iso

    def _decode_time(self, value: Any) -> str:
        return str(value)

    def _encode_json(self, value: dict[str, str]) -> Any:
        import json

        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    # -- helpers -------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _row(self, rec: tuple[Any, ...]) -> Row:
        return Row(
            id=rec[0],
            tenant=rec[1],
            kind=rec[2],
            predicate_type=rec[3],
            image=rec[4],
            annotations=load_annotations(rec[5]),
            created_at=self._decode_time(rec[6]),
        )

    # -- API -----------------------------------------------------------------------------
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
    ) -> PutResult:
        digests = check_put(tenant, data, kind, subject_digests, predicate_type, image, annotations)
        data = bytes(data)
        cdigest = content_digest(data)
        dsha = "sha256:" + hashlib.sha256(data).hexdigest()
        now = self._encode_time(utcnow())
        new_id = str(uuid.uuid4())
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO attestations (id, tenant, content_sha256, data_sha256, kind, data,"
                    " predicate_type, image, annotations, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (tenant, content_sha256) DO NOTHING"
                ),
                (new_id, tenant, cdigest, dsha, kind, data, predicate_type, image, self._encode_json(annotations), now),
            )
            inserted = cur.rowcount == 1
            if inserted:
                att_id = new_id
            else:
                cur.execute(
                    self._sql("SELECT id FROM attestations WHERE tenant = ? AND content_sha256 = ?"),
                    (tenant, cdigest),
                )
                found = cur.fetchone()
                if found is None:  # pragma: no cover - the conflicting row vanished mid-transaction
                    from ..errors import StoreError

                    raise StoreError(f"{self.backend} store: a concurrent delete raced this import; retry")
                att_id = found[0]
            linked = 0
            for digest in digests:
                cur.execute(
                    self._sql(
                        "INSERT INTO attestation_subjects (attestation_id, digest, created_at) VALUES (?,?,?)"
                        " ON CONFLICT (attestation_id, digest) DO NOTHING"
                    ),
                    (att_id, digest, now),
                )
                linked += max(cur.rowcount, 0)
        return PutResult(id=att_id, created=inserted or linked > 0)

    def find_by_digest(self, digest: str, *, limit: int = MAX_RESULTS) -> list[Candidate]:
        """Every tenant's attestations stored under ``digest``, oldest first (at most ``limit``)."""
        check_digest(digest)
        with self._transaction(write=False) as cur:
            cur.execute(
                self._sql(
                    f"SELECT {_COLUMNS}, a.data FROM attestations a"
                    " JOIN attestation_subjects s ON s.attestation_id = a.id"
                    " WHERE s.digest = ? ORDER BY a.created_at, a.id LIMIT ?"
                ),
                (digest, int(limit)),
            )
            recs = cur.fetchall()
        out = []
        for rec in recs:
            row = self._row(rec)
            row.data = bytes(rec[7])
            out.append(to_candidate(row, digest))
        return out

    def list_for_tenant(self, tenant: str, digest: str | None = None) -> list[StoredAttestation]:
        """One tenant's attestations (optionally only those stored under ``digest``), oldest first."""
        if digest is not None:
            check_digest(digest)
        query = (
            f"SELECT {_COLUMNS}, a.data_sha256, LENGTH(a.data), s.digest FROM attestations a"
            " JOIN attestation_subjects s ON s.attestation_id = a.id WHERE a.tenant = ?"
        )
        params: tuple[Any, ...] = (tenant,)
        if digest is not None:
            query += " AND a.id IN (SELECT attestation_id FROM attestation_subjects WHERE digest = ?)"
            params += (digest,)
        query += " ORDER BY a.created_at, a.id, s.digest"
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(query), params)
            recs = cur.fetchall()
        rows: dict[str, Row] = {}
        for rec in recs:
            row = rows.get(rec[0])
            if row is None:
                row = rows[rec[0]] = self._row(rec)
                row.data_sha256 = rec[7]
                row.size = int(rec[8])
            row.subjects.append(rec[9])
        return [to_stored(r) for r in rows.values()]

    def counts(self) -> tuple[int, int]:
        """(attestation rows, subject rows): for health output and the integrity tests."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT COUNT(*) FROM attestations")
            atts = int(cur.fetchone()[0])
            cur.execute("SELECT COUNT(*) FROM attestation_subjects")
            subs = int(cur.fetchone()[0])
        return atts, subs

    def ping(self) -> None:
        with self._transaction(write=False) as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def schema_version(self) -> int:
        with self._transaction(write=False) as cur:
            cur.execute("SELECT MAX(version) FROM schema_migrations")
            return int(cur.fetchone()[0] or 0)
