"""PostgreSQL backend (psycopg 3 + psycopg_pool): one database shared by every replica.

Connections come from a small pool; each is checked before use, so after a database restart
the broken ones are discarded and replaced instead of failing a request. Connecting and
waiting for a pooled connection are both bounded (``connect_timeout``, ``pool_timeout``),
so an unreachable database becomes a ``StoreError`` quickly, never a hung admission.
Migrations run under a transaction-scoped advisory lock, so replicas starting together
apply each one exactly once.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from typing import Any, Iterator

from ..errors import StoreError
from . import migrations, redact_dsn
from ._sql import SQLStore

# pg_advisory_xact_lock key for migrations: any constant unique to this application.
_MIGRATION_LOCK = 0x5354454C4C41  # "STELLA"


class PostgresStore(SQLStore):
    backend = "postgresql"
    placeholder = "%s"

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: int = 3,
        pool_timeout: float = 2.0,
        retry_after: float = 1.0,
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - packaging
            raise StoreError(
                "the PostgreSQL store needs psycopg and psycopg_pool",
                reason="CONFIG_INVALID",
                hint="pip install 'stellaops-attest[postgres]' psycopg_pool",
            ) from exc
        self.dsn_display = redact_dsn(dsn)
        self.pool_timeout = float(pool_timeout)
        self.retry_after = float(retry_after)
        self._down_until = 0.0
        self._last_error = ""
        kwargs = {"connect_timeout": connect_timeout, "application_name": "stellaops-attest"}
        # Migrate over one direct connection first: an unreachable server, a wrong password or
        # a missing database fails here at once with the server's own words.
        try:
            with psycopg.connect(dsn, **kwargs) as conn:  # type: ignore[arg-type]
                self._migrate(conn)
        except psycopg.Error as exc:
            raise self._error("is unavailable", exc) from exc
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            timeout=self.pool_timeout,
            check=ConnectionPool.check_connection,  # a connection broken by a restart is replaced
            reconnect_timeout=self.retry_after,  # give up background retries fast; the next use retries
            name="stellaops-store",
            open=False,
        )
        self._pool.open(wait=False)

    def _error(self, what: str, exc: BaseException) -> StoreError:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(
            f"PostgreSQL store {self.dsn_display} {what}: {message}",
            hint="check the database is running and reachable from the provider, and the DSN in store.dsn",
        )

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        now = time.monotonic()
        if now < self._down_until:
            # fail fast while the database is known to be down (no admission waits on it)
            raise StoreError(
                f"PostgreSQL store {self.dsn_display} is unavailable: {self._last_error}",
                hint="check the database is running and reachable; the provider retries by itself",
            )
        timeout = self.pool_timeout
        remaining = _remaining_time()
        if remaining is not None:
            timeout = max(0.05, min(timeout, remaining))
        try:
            with self._pool.connection(timeout=timeout) as conn:
                with conn.transaction():
                    with conn.cursor() as cur:
                        yield cur
        except (psycopg.Error, PoolTimeout) as exc:
            unavailable = _is_connection_error(exc)
            error = self._error("is unavailable" if unavailable else "failed", exc)
            if unavailable:
                self._last_error = error.detail.split(": ", 1)[-1]
                self._down_until = time.monotonic() + self.retry_after
            raise error from exc
        self._down_until = 0.0

    def _encode_time(self, iso: str) -> Any:
        return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)

    def _decode_time(self, value: Any) -> str:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return str(value)

    def _encode_json(self, value: dict[str, str]) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def _migrate(self, conn: Any) -> None:
        from . import utcnow

        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            current = int(cur.fetchone()[0])
            if current > migrations.LATEST:
                raise StoreError(
                    f"PostgreSQL store {self.dsn_display} has schema version {current}, newer than this"
                    f" release's {migrations.LATEST}",
                    reason="CONFIG_INVALID",
                    hint="run a StellaOps release at least as new as the one that last wrote this store",
                )
            for version, statements in migrations.POSTGRES:
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (version, self._encode_time(utcnow())),
                )

    def close(self) -> None:
        self._pool.close(timeout=1)

    def __repr__(self) -> str:
        return f"PostgresStore({self.dsn_display!r})"


def _remaining_time() -> float | None:
    """Seconds left of the caller's deadline (the engine's ``deadline_scope``), if any."""
    try:
        from ..registry import remaining_time
    except ImportError:  # pragma: no cover
        return None
    return remaining_time()


def _is_connection_error(exc: BaseException) -> bool:
    import psycopg
    from psycopg_pool import PoolTimeout

    return isinstance(exc, (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError))

