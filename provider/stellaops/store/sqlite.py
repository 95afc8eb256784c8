"""SQLite backend: one file, WAL journal, for a single provider replica and the CLI.

WAL lets readers (discovery) run while an import writes; ``synchronous=FULL`` makes every
committed import survive a crash or power loss; ``BEGIN IMMEDIATE`` takes the write lock up
front so two processes importing at once queue (``busy_timeout``) instead of failing.
One connection per store object, shared by threads under a lock (SQLite serialises writers
anyway and reads here are single indexed queries).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from typing import Any, Iterator

from ..errors import StoreError
from . import migrations
from ._sql import SQLStore

BUSY_TIMEOUT_MS = 5000


def _enable_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL. Two processes opening a new database at once (gunicorn's workers at
    start-up) race for that switch, and SQLite answers the loser "database is locked" at once,
    without its busy handler: retry for up to the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SQLiteStore(SQLStore):
    backend = "sqlite"
    placeholder = "?"

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            if path != ":memory:":
                directory = os.path.dirname(path)
                if directory:
                    os.makedirs(directory, mode=0o700, exist_ok=True)
            old_umask = os.umask(0o077)  # the database holds every tenant's imports: owner only
            try:
                conn = sqlite3.connect(
                    path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
                )
            finally:
                os.umask(old_umask)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if path != ":memory:":
                mode = _enable_wal(conn)
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL could not be enabled")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn = conn
        except (OSError, sqlite3.Error) as exc:
            raise self._error("cannot be opened", exc) from exc
        self._migrate()

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"SQLite store {self.path} {what}: {exc}",
            hint="check the path in store.dsn exists, is writable by this user and is on a local disk",
        )

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        # writers take the write lock up front (IMMEDIATE: no upgrade deadlock between
        # processes); readers start a deferred transaction, which in WAL mode never blocks
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"SQLite store {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise self._error("is unavailable", exc) from exc
            cur = conn.cursor()
            try:
                yield cur
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._error("failed", exc) from exc
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def _migrate(self) -> None:
        with self._transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            current = int(cur.fetchone()[0])
            if current > migrations.LATEST:
                raise StoreError(
                    f"SQLite store {self.path} has schema version {current}, newer than this release's"
                    f" {migrations.LATEST}",
                    reason="CONFIG_INVALID",
                    hint="run a StellaOps release at least as new as the one that last wrote this store",
                )
            from . import utcnow

            for version, statements in migrations.SQLITE:
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement)
                cur.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, utcnow()))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"
