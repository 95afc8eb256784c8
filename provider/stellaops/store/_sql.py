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
from ._fair import fair_share
from . import (
    MAX_RESULTS,
    ROWS_PER_TENANT_DIGEST,
    PutResult,
    Row,
    StoreFind,
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
    # limits.storeRowsPerTenantDigest, set by open_store
    rows_per_tenant_digest: int = ROWS_PER_TENANT_DIGEST

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
        keep: int | None = None,
    ) -> PutResult:
        """Store one attestation for ``tenant`` under ``subject_digests`` (module docstring of
        the package). Then at most ``keep`` (default: the store's ``rows_per_tenant_digest``)
        of this tenant's rows stay under each of those digests: the newest, this one always
        among them; the older ones are unlinked from that digest (and deleted once they are
        under no digest). Only this tenant's rows are ever pruned.

        Pruning rather than refusing: a tenant that re-scans an image daily must keep working
        without an operator, discovery reads only the newest rows anyway, and the cap bounds
        what one tenant can pile up under a digest. The cost is the tenant's own oldest rows
        (a provenance imported once can be pruned by 100 later scans of the same image: keep
        the cap above the number of imports a tenant makes per image, or re-import it)."""
        digests = check_put(tenant, data, kind, subject_digests, predicate_type, image, annotations)
        cap = self.rows_per_tenant_digest if keep is None else int(keep)
        if cap < 1:
            from ..errors import StoreError

            raise StoreError(f"keep must be at least 1, got {cap}", reason="REQUEST_INVALID", hint="this is a caller bug; report it")
        data = bytes(data)
        cdigest = content_digest(data)
        dsha = "sha256:" + hashlib.sha256(data).hexdigest()
        now = self._encode_time(utcnow())
        new_id = str(uuid.uuid4())
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO attestations (id, tenant, content_sha256, data_sha256, kind,"
                    " predicate_type, image, annotations, created_at, size, data) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (tenant, content_sha256) DO NOTHING"
                ),
                (new_id, tenant, cdigest, dsha, kind, predicate_type, image, self._encode_json(annotations), now, len(data), data),
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
            pruned = sum(self._prune(cur, tenant, digest, att_id, cap) for digest in digests)
        return PutResult(id=att_id, created=inserted or linked > 0, pruned=pruned)

    def _prune(self, cur: Any, tenant: str, digest: str, keep_id: str, cap: int) -> int:
        """Unlink ``tenant``'s rows under ``digest`` beyond the newest ``cap`` (``keep_id``, the
        row just imported, always kept); delete the attestations left under no digest.
        Concurrent imports of one tenant and digest on PostgreSQL may leave the cap exceeded by
        a row or two until the next import: reads bound each tenant separately anyway."""
        cur.execute(
            self._sql(
                "SELECT s.attestation_id FROM attestation_subjects s JOIN attestations a ON a.id = s.attestation_id"
                " WHERE s.digest = ? AND a.tenant = ? AND s.attestation_id <> ?"
                " ORDER BY s.created_at DESC, s.attestation_id DESC"
            ),
            (digest, tenant, keep_id),
        )
        old = [r[0] for r in cur.fetchall()][cap - 1 :]
        for att_id in old:
            cur.execute(self._sql("DELETE FROM attestation_subjects WHERE attestation_id = ? AND digest = ?"), (att_id, digest))
            cur.execute(
                self._sql(
                    "DELETE FROM attestations WHERE id = ? AND tenant = ?"
                    " AND NOT EXISTS (SELECT 1 FROM attestation_subjects s WHERE s.attestation_id = ?)"
                ),
                (att_id, tenant, att_id),
            )
        return len(old)

    def find_by_digest(
        self, digest: str, *, per_tenant: int | None = None, max_bytes: int | None = None, limit: int = MAX_RESULTS
    ) -> StoreFind | list[Candidate]:
        """What discovery reads from the store for ``digest``.

        With ``per_tenant``: a :class:`StoreFind` of each tenant's newest ``per_tenant`` rows,
        each tenant within its max-min fair share of ``max_bytes`` (``None``: no byte budget),
        newest first up to its first row that does not fit (:func:`._fair.fair_share`).

        Without it (the call discovery made before; kept until discovery moves): a list of each
        tenant's newest ``limit`` rows, oldest first. The per-tenant budget is applied in the
        query in both forms, so no tenant's rows, however many, hide another tenant's.
        """
        if per_tenant is None:
            found, stored_at = self._find(digest, int(limit), None)
            order = sorted(range(len(found.candidates)), key=lambda i: stored_at[i])
            return [found.candidates[i] for i in order]
        return self._find(digest, int(per_tenant), max_bytes)[0]

    def _find(self, digest: str, per_tenant: int, max_bytes: int | None) -> tuple[StoreFind, list[tuple[str, str]]]:
        """The :class:`StoreFind`, and for each candidate (when it was stored under the digest, id)."""
        check_digest(digest)
        if per_tenant < 0 or (max_bytes is not None and max_bytes < 0):
            from ..errors import StoreError

            raise StoreError("per_tenant and max_bytes must not be negative", reason="REQUEST_INVALID", hint="this is a caller bug; report it")
        with self._transaction(write=False) as cur:
            # 1. the candidates' metadata and sizes (the size column written at import; never
            #    LENGTH(data), which SQLite evaluates after copying the bytes into the window's
            #    sorter), ranked newest first within each tenant by the time each was stored
            #    under this digest; no bytes loaded yet
            cur.execute(
                self._sql(
                    f"SELECT * FROM (SELECT {_COLUMNS}, a.size AS size, s.created_at AS stored_at,"
                    " ROW_NUMBER() OVER (PARTITION BY a.tenant ORDER BY s.created_at DESC, a.id DESC) AS rn,"
                    " COUNT(*) OVER (PARTITION BY a.tenant) AS total"
                    " FROM attestations a JOIN attestation_subjects s ON s.attestation_id = a.id"
                    " WHERE s.digest = ?) ranked WHERE ranked.rn <= ?"
                ),
                (digest, max(per_tenant, 1)),  # at least each tenant's newest: every tenant's count is seen
            )
            recs = cur.fetchall()
            # 2. each tenant's fair share of the byte budget, its rows newest first
            totals: dict[str, int] = {}
            for rec in recs:
                totals[rec[1]] = int(rec[10])
            #    (per_tenant 0: each tenant's newest was read for its count only)
            chosen, left_out = fair_share(
                [rec for rec in recs if int(rec[9]) <= per_tenant],
                max_bytes,
                tenant=lambda rec: rec[1],
                rank=lambda rec: int(rec[9]),
                size=lambda rec: int(rec[7]),
            )
            skipped: dict[tuple[str, str], int] = {}
            for tenant, total in totals.items():
                if total > per_tenant:
                    skipped[(tenant, "rows")] = total - per_tenant
            for tenant, n in left_out.items():
                skipped[(tenant, "bytes")] = n
            # 3. the bytes of the chosen rows only
            data: dict[str, bytes] = {}
            ids = [rec[0] for rec in chosen]
            for start in range(0, len(ids), 200):
                batch = ids[start : start + 200]
                cur.execute(
                    self._sql(f"SELECT id, data FROM attestations WHERE id IN ({','.join('?' * len(batch))})"),
                    tuple(batch),
                )
                data.update((r[0], bytes(r[1])) for r in cur.fetchall())
        out: list[Candidate] = []
        stored_at: list[tuple[str, str]] = []
        for rec in chosen:
            if rec[0] not in data:  # pragma: no cover - one read transaction: cannot vanish
                continue
            row = self._row(rec)
            row.data = data[rec[0]]
            out.append(to_candidate(row, digest))
            stored_at.append((self._decode_time(rec[8]), rec[0]))
        found = StoreFind(
            candidates=out,
            skipped=[(t, n, why) for (t, why), n in sorted(skipped.items(), key=lambda kv: (kv[0][0], kv[0][1] != "rows"))],
        )
        return found, stored_at

    def list_for_tenant(self, tenant: str, digest: str | None = None) -> list[StoredAttestation]:
        """One tenant's attestations (optionally only those stored under ``digest``), oldest first."""
        if digest is not None:
            check_digest(digest)
        query = (
            f"SELECT {_COLUMNS}, a.data_sha256, a.size, s.digest FROM attestations a"
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
