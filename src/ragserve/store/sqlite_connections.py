"""SQLite connections for the embedded store: a pool, explicit transactions, one error mapping.

A connection serves one caller at a time (any thread), so readers from a thread pool read in
parallel under WAL while a writer holds the write lock. Every SQLite error leaves here as a
``BackendError``.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ragserve.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError

MEMORY = ":memory:"


def unicode_lower(value: str | None) -> str | None:
    """SQL ``unicode_lower(x)``: Python's ``str.lower`` (SQLite's own ``lower()`` and ``LIKE``
    fold ASCII letters only, so ``É`` would not match ``é``); NULL and other values pass
    through."""
    return value.lower() if isinstance(value, str) else value


def database_path(url: str) -> str:
    """The path in ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (or ``:memory:``)."""
    prefix = "sqlite://"
    rest = url[len(prefix) :] if url[: len(prefix)].lower() == prefix else ""
    rest = rest.split("?", 1)[0]  # options, e.g. ?keyword_engine=fts5, are SqliteStore's
    if rest in (MEMORY, "/" + MEMORY):
        return MEMORY
    path = rest[1:] if rest.startswith("/") else ""
    if not path:
        raise ConfigError(
            f"invalid SQLite URL {url!r}; use sqlite:///relative/path.db or sqlite:////abs/path.db"
        )
    return path


class ConnectionPool:
    """Connections to one database file (created with its parent folders if missing).

    ``:memory:`` gives a private in-memory database, kept alive by an anchor connection and
    served by one pooled connection at a time (its shared-cache table locks never conflict).
    """

    def __init__(self, path: str, *, busy_timeout_ms: int) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._anchor: sqlite3.Connection | None = None
        self._slots: threading.BoundedSemaphore | None = None
        if path == MEMORY:
            self._uri = f"file:ragserve-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self._slots = threading.BoundedSemaphore(1)
            self._anchor = self._connect()
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._uri = Path(path).absolute().as_uri()

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A snapshot read, or a write that takes the write lock up front (``BEGIN IMMEDIATE``,
        so two writers never deadlock upgrading); commits on success, rolls back on any error."""
        conn = self._acquire()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self.backend_error(exc) from exc
        finally:
            self._release(conn)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection in autocommit mode, for statements that manage their own
        transaction (migrations, pragmas)."""
        conn = self._acquire()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self.backend_error(exc) from exc
        finally:
            self._release(conn)

    def close(self) -> None:
        """Close idle connections now and busy ones when their caller returns them."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    def backend_error(self, exc: sqlite3.Error) -> BackendError:
        message = f"{exc} ({self.path})"
        if isinstance(exc, sqlite3.OperationalError):
            if "locked" in str(exc) or "busy" in str(exc):
                return BackendTimeout(
                    "sqlite",
                    f"{message}: another writer held the database longer than "
                    f"busy_timeout_ms={self._busy_timeout_ms}",
                )
            return BackendUnavailable("sqlite", message)
        return BackendError("sqlite", message)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._uri,
                uri=True,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # transactions are explicit (BEGIN / COMMIT)
                check_same_thread=False,  # the pool hands a connection to one thread at a time
            )
        except sqlite3.Error as exc:
            raise self.backend_error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("unicode_lower", 1, unicode_lower, deterministic=True)
        except sqlite3.Error as exc:
            conn.close()
            raise self.backend_error(exc) from exc
        return conn

    def _acquire(self) -> sqlite3.Connection:
        if self._slots is not None:
            self._slots.acquire()
        try:
            with self._lock:
                if self._closed:
                    raise BackendUnavailable("sqlite", f"the store is closed ({self.path})")
                if self._idle:
                    return self._idle.pop()
            return self._connect()
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise

    def _release(self, conn: sqlite3.Connection) -> None:
        healthy = True
        if conn.in_transaction:  # a failed COMMIT or ROLLBACK left it open
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                healthy = False
        with self._lock:
            keep = healthy and not self._closed
            if keep:
                self._idle.append(conn)
        if not keep:
            conn.close()
        if self._slots is not None:
            self._slots.release()
