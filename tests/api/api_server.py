"""A real ``ragserve serve`` process on loopback, driven over real HTTP.

``api_server`` is shared by the session (default limits, generous rate); tests that need
their own limits or LLM start one with ``start_api_server``. Keys are created through the
store the server uses, exactly as ``ragserve keys create`` does. An ``ApiServer`` may stand
for several replicas (see ``cluster.py``): its clients then send each request to the next
replica in turn.
"""

from __future__ import annotations

import itertools
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

from ragserve.config import StoreSettings
from ragserve.security.keys import ApiKeys
from ragserve.store import Store, open_store

RAGSERVE = Path(sys.executable).parent / "ragserve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RoundRobinTransport(httpx.HTTPTransport):
    """Sends each request to the next of several replicas (same scheme and host, other ports)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self._ports = [httpx.URL(url).port for url in urls]
        self._next = itertools.cycle(self._ports)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(port=next(self._next))
        return super().handle_request(request)


@dataclass
class ApiServer:
    """A running server (or replicas of one): URL, data directory, log files and processes."""

    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    store_url: str = ""
    replica_urls: list[str] = field(default_factory=list)
    """Every replica's URL (the first is ``url``); empty for a single server."""
    log_paths: list[Path] = field(default_factory=list)
    _keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def open_store(self) -> Store:
        """The store the server uses (the caller closes it)."""
        url = self.store_url or f"sqlite:///{self.data_dir / 'ragserve.db'}"
        return open_store(StoreSettings(url=url))

    def create_key(self, tenant: str, scopes: str = "read,write,admin") -> str:
        store = self.open_store()
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
        """A client of the server; of every replica in turn when there are several."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kwargs.setdefault("timeout", 60.0)
        if len(self.replica_urls) > 1:
            kwargs.setdefault("transport", RoundRobinTransport(self.replica_urls))
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)  # type: ignore[arg-type]

    def logs(self) -> list[str]:
        """Every line the server (each replica) logged."""
        paths = self.log_paths or [self.log_path]
        return [line for path in paths for line in path.read_text().splitlines()]


@contextmanager
def start_api_server(
    base: Path, model_cache: Path, env: dict[str, str] | None = None
) -> Iterator[ApiServer]:
    """Start ``ragserve serve`` with ``RAGSERVE_*`` overrides in ``env``; stop it after."""
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = base / "server.log"
    environment = server_environment(data_dir, model_cache, env)
    process = launch(["serve", "--port", str(port)], log_path, environment, base)
    server = ApiServer(f"http://127.0.0.1:{port}", data_dir, log_path, process)
    try:
        wait_until_healthy(server.url, process, log_path, timeout_s=120.0)
        yield server
    finally:
        stop(process)


def server_environment(
    data_dir: Path, model_cache: Path, env: dict[str, str] | None
) -> dict[str, str]:
    """This process's environment with the server's data directory and overrides."""
    return {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(model_cache),
        **(env or {}),
    }


def launch(
    args: list[str], log_path: Path, environment: dict[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """``ragserve <args>`` in the background, its output in ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(RAGSERVE), *args], stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=cwd
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"ragserve serve exited with {process.returncode}:\n"
                + log_path.read_text()[-3000:],
                pytrace=False,
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"ragserve serve not healthy after {timeout_s:.0f} s", pytrace=False)
