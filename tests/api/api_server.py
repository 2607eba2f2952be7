"""A real ``ragserve serve`` process on loopback, driven over real HTTP.

``api_server`` is shared by the session (default limits, generous rate); tests that need
their own limits or LLM start one with ``start_api_server``. Keys are created through the
store the server uses, exactly as ``ragserve keys create`` does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ragserve.security.keys import ApiKeys
from ragserve.store.sqlite import SqliteStore

RAGSERVE = Path(sys.executable).parent / "ragserve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ApiServer:
    """A running server: its URL, data directory, log file and process."""

    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    _keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def create_key(self, tenant: str, scopes: str = "read,write,admin") -> str:
        store = SqliteStore(self.data_dir / "ragserve.db")
        try:
            key, _ = ApiKeys(store.accounts).create(tenant, scopes.split(","))
        finally:
            store.close()
        return key

    def key(self, tenant: str, scopes: str = "read,write,admin") -> str:
        """A key for (tenant, scopes), created once per server."""
        if (tenant, scopes) not in self._keys:
            self._keys[(tenant, scopes)] = self.create_key(tenant, scopes)
        return self._keys[(tenant, scopes)]

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kwargs.setdefault("timeout", 60.0)
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)  # type: ignore[arg-type]

    def logs(self) -> list[str]:
        return self.log_path.read_text().splitlines()


@contextmanager
def start_api_server(
    base: Path, model_cache: Path, env: dict[str, str] | None = None
) -> Iterator[ApiServer]:
    """Start ``ragserve serve`` with ``RAGSERVE_*`` overrides in ``env``; stop it after."""
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = base / "server.log"
    environment = {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(model_cache),
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(RAGSERVE), "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=base,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", data_dir, log_path, process)
    try:
        _wait_until_healthy(server, timeout_s=120.0)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(server: ApiServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"ragserve serve exited with {server.process.returncode}:\n"
                + server.log_path.read_text()[-3000:],
                pytrace=False,
            )
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"ragserve serve not healthy after {timeout_s:.0f} s", pytrace=False)
