"""SQLite backend: one file, WAL journal, for a single provider replica and the CLI.

WAL lets readers (discovery) run while an import writes; ``synchronous=FULL`` makes every
committed import survive a crash or power loss; ``BEGIN IMMEDIATE`` takes the write lock up
front so two processes importing at once queue (``busy_timeout``) instead of failing.
Connections: one for writes (imports, migrations), shared by threads under a lock (SQLite
serialises writers anyway); reads (discovery, listings) each take a connection of their own
from a small pool, opened on demand, so that one image's large read never makes an unrelated
image's lookup, or an import, wait for it (issue 16 item 8: 16 junk rows of 3.9 MB held the one
shared connection for seconds). WAL gives each read transaction its own snapshot. Reader
connections are ``query_only``. ``:memory:`` databases exist per connection: there every read
uses the write connection, as before.
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
# while migrating: a process that finds another one migrating waits this long for it (migration
# 2 copies the attestations table, which takes a while for a large store)
MIGRATION_BUSY_TIMEOUT_MS = 30 * 60 * 1000
# idle reader connections kept per store (more are opened while more threads read at once)
IDLE_READERS = 8


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
        self._lock = threading.RLock()  # the write connection
        self._conn: sqlite3.Connection | None = None
        self._pool_lock = threading.Lock()  # the reader pool's lists
        self._idle: list[sqlite3.Connection] = []  # reader connections not in use
        self._closed = False
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

    def _reader(self) -> sqlite3.Connection:
        """An idle reader connection, or a new one."""
        with self._pool_lock:
            if self._closed:
                raise StoreError(f"SQLite store {self.path} is closed")
            if self._idle:
                return self._idle.pop()
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")  # a reader never writes
        except sqlite3.Error as exc:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            raise self._error("is unavailable", exc) from exc
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._pool_lock:
            if not self._closed and len(self._idle) < IDLE_READERS:
                self._idle.append(conn)
                return
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        # writers take the write lock up front (IMMEDIATE: no upgrade deadlock between
        # processes); readers start a deferred transaction on a connection of their own,
        # which in WAL mode never blocks and never waits for another thread
        if write or self.path == ":memory:":
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise StoreError(f"SQLite store {self.path} is closed")
                with self._run(conn, "BEGIN IMMEDIATE" if write else "BEGIN") as cur:
                    yield cur
            return
        conn = self._reader()
        try:
            with self._run(conn, "BEGIN") as cur:
                yield cur
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.close()  # its state is unknown: not back into the pool
            raise
        self._give_back(conn)

    @contextlib.contextmanager
    def _run(self, conn: sqlite3.Connection, begin: str) -> Iterator[Any]:
        """One transaction on ``conn``: committed on a clean exit, rolled back otherwise."""
        try:
            conn.execute(begin)
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
        # Foreign keys off while migrating (SQLite's procedure for rebuilding a table, see
        # migrations.py: dropping the old table must not cascade to the subject rows); the
        # pragma is a no-op inside a transaction, so it is set around it, and every foreign key
        # is checked before the migration commits.
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute(f"PRAGMA busy_timeout = {MIGRATION_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise self._error("cannot be opened", exc) from exc
        try:
            self._apply_migrations()
        finally:
            for pragma in ("foreign_keys = ON", f"busy_timeout = {BUSY_TIMEOUT_MS}"):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(f"PRAGMA {pragma}")
        if conn.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            raise StoreError(f"SQLite store {self.path}: foreign keys could not be turned back on after migrating")

    def _apply_migrations(self) -> None:
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
            if current == migrations.LATEST:
                return
            cur.execute("PRAGMA foreign_key_check")
            broken = cur.fetchall()
            if broken:
                raise StoreError(
                    f"SQLite store {self.path}: {len(broken)} row(s) break a foreign key after migrating "
                    f"(first: table {broken[0][0]}, row {broken[0][1]}); nothing was changed",
                    reason="CONFIG_INVALID",
                    hint="restore the store from a backup, or re-import its attestations into a new store",
                )

    def close(self) -> None:
        """Close every connection; a reader still in use is closed when its read ends."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"
