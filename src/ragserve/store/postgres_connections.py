"""PostgreSQL connections for the server store: the URL, a pool, transactions, one error mapping.

Reads run in ``REPEATABLE READ READ ONLY`` transactions, so every statement of one search sees
the same snapshot (the version, the rows, the filter); writes run in ``READ COMMITTED`` and
serialise on their collection's row lock. Every psycopg error leaves here as a ``BackendError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import IsolationLevel, errors
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ragserve.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError

Connection = psycopg.Connection[Any]

BACKEND = "postgresql"
CONNECT_TIMEOUT_S = 5
"""Default ``connect_timeout``: how long opening one connection may take."""
PING_TIMEOUT_S = 2.0
"""A ping waits at most this long for a connection and for its query."""
POOL_TIMEOUT_S = 5.0
"""How long a call waits for a pooled connection before failing."""
_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def split_url(url: str, options: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The libpq URL (``postgresql://``, with a ``connect_timeout``) and the store's own
    ``options`` taken out of its query string (libpq refuses parameters it does not know)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError(f"invalid PostgreSQL URL {url!r}; use postgresql://user@host:port/db")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            ours[key] = value
        else:
            theirs.append((key, value))
    if not any(key == "connect_timeout" for key, _ in theirs):
        theirs.append(("connect_timeout", str(CONNECT_TIMEOUT_S)))
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(theirs), ""))
    return conninfo, ours


def backend_error(exc: Exception, where: str) -> BackendError:
    """The ``BackendError`` for a psycopg or pool exception; ``where`` names the server."""
    message = f"{exc} ({where})"
    if isinstance(exc, errors.LockNotAvailable | errors.QueryCanceled):
        return BackendTimeout(BACKEND, f"{message}: the database was busy for too long")
    if isinstance(exc, PoolClosed):
        return BackendUnavailable(BACKEND, f"the store is closed ({where})")
    if isinstance(exc, psycopg.OperationalError):
        return BackendUnavailable(BACKEND, message)
    return BackendError(BACKEND, message)


def describe(conninfo: str) -> str:
    """Host, port and database of ``conninfo``, never its password, for messages."""
    parts = urlsplit(conninfo)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


class PostgresPool:
    """A ``psycopg_pool.ConnectionPool`` of autocommit connections with explicit transactions.

    ``configure`` prepares each new connection (type adapters); ``lock_timeout_ms`` bounds how
    long a statement waits for a lock (another writer of the same collection). Pooled
    connections are checked before use, so a restarted server costs no failed request.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        size: int,
        lock_timeout_ms: int,
        configure: Callable[[Connection], None],
    ) -> None:
        self.where = describe(conninfo)
        self._conninfo = conninfo
        self._size = size
        self._lock_timeout_ms = lock_timeout_ms
        self._configure = configure
        self._unreachable = False
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=size,
            timeout=POOL_TIMEOUT_S,
            # The pool's reconnect delays double up to this; short, so that it comes back
            # within seconds of the server.
            reconnect_timeout=POOL_TIMEOUT_S,
            configure=self._prepare,
            check=ConnectionPool.check_connection,
            name=f"ragserve-{self.where}",
            open=True,
        )

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """A snapshot read, or a write; commits on success, rolls back on any error."""
        with self._checked_out(POOL_TIMEOUT_S) as conn:
            conn.isolation_level = (
                IsolationLevel.READ_COMMITTED if write else IsolationLevel.REPEATABLE_READ
            )
            conn.read_only = not write
            with conn.transaction():
                yield conn

    @contextmanager
    def connection(self, *, timeout_s: float = POOL_TIMEOUT_S) -> Iterator[Connection]:
        """A pooled connection in autocommit mode, for statements that manage their own
        transaction (index creation) and for pings."""
        with self._checked_out(timeout_s) as conn:
            conn.isolation_level = None
            conn.read_only = None
            yield conn

    def ping(self) -> None:
        """One bounded round trip that reads a table."""
        with self.connection(timeout_s=PING_TIMEOUT_S) as conn, conn.transaction():
            timeout = f"{int(PING_TIMEOUT_S * 1000)}ms"
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
            conn.execute("SELECT 1 FROM migrations LIMIT 1").fetchall()

    def close(self) -> None:
        self._pool.close(timeout=5.0)

    @contextmanager
    def _checked_out(self, timeout_s: float) -> Iterator[Connection]:
        """A pooled connection; every psycopg and pool error leaves as a ``BackendError``.

        Once the server was found unreachable, each call first tries one direct connection
        and fails at once while that fails, instead of waiting for the pool every time.
        """
        if self._unreachable:
            self._raise_if_unreachable()
        try:
            with self._pool.connection(timeout=timeout_s) as conn:
                yield conn
        except PoolTimeout as exc:
            self._raise_if_unreachable()
            raise BackendTimeout(
                BACKEND,
                f"{self.where}: all {self._size} pooled connections stayed busy for "
                f"{timeout_s:g} s; raise the store URL's pool_size or add replicas",
            ) from exc
        except (psycopg.Error, PoolClosed) as exc:
            raise backend_error(exc, self.where) from exc

    def _raise_if_unreachable(self) -> None:
        """Raise ``BackendUnavailable`` (with libpq's reason) unless a direct connection works."""
        try:
            psycopg.connect(self._conninfo, autocommit=True).close()
        except psycopg.Error as exc:
            self._unreachable = True
            raise BackendUnavailable(BACKEND, f"{self.where}: {str(exc).strip()}") from exc
        self._unreachable = False

    def _prepare(self, conn: Connection) -> None:
        # lock_timeout = 0 would wait forever; a zero busy timeout means "do not wait".
        timeout = f"{max(1, self._lock_timeout_ms)}ms"
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (timeout,))
        self._configure(conn)
