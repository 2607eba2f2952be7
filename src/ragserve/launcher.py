"""``ragserve up``: the API and the web UI together, as two child processes.

The API starts first; once it answers ``/healthz`` the UI starts pointed at it, and the URL to
open is printed. Ctrl-C (or SIGTERM) stops both; if either exits on its own, the other is
stopped too and its exit code is returned.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

STOP_GRACE_S = 10.0


class LaunchError(Exception):
    """A child process exited or never became ready."""


@dataclass(frozen=True)
class Endpoints:
    host: str
    api_port: int
    ui_port: int

    @property
    def local_host(self) -> str:
        """The address a browser on this machine uses (a wildcard bind is not one)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def api_url(self) -> str:
        return f"http://{self.local_host}:{self.api_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.local_host}:{self.ui_port}"


def command(*args: str) -> list[str]:
    """A ``ragserve`` command run with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "ragserve.cli", *args]


def api_command(endpoints: Endpoints, data_dir: Path | None) -> list[str]:
    args = ["serve", "--host", endpoints.host, "--port", str(endpoints.api_port)]
    return command(*args, *(["--data-dir", str(data_dir)] if data_dir else []))


def ui_command(endpoints: Endpoints) -> list[str]:
    return command(
        "ui",
        "--host", endpoints.host,
        "--port", str(endpoints.ui_port),
        "--api-url", endpoints.api_url,
    )  # fmt: skip


def wait_ready(url: str, process: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; raises ``LaunchError`` if ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LaunchError(f"the {name} exited with code {process.returncode} while starting")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise LaunchError(f"the {name} did not answer {url} within {timeout_s:.0f} s")


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every running child, then SIGKILL what is left after the grace period."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(
    endpoints: Endpoints,
    data_dir: Path | None,
    *,
    announce: Callable[[str], None],
    ready_timeout_s: float = 180.0,
) -> int:
    """Start both, announce the URLs, and wait until Ctrl-C or SIGTERM (then returns 0).

    Raises ``LaunchError`` when either child exits or never becomes ready; both are stopped.
    """
    processes: list[subprocess.Popen[bytes]] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        api = subprocess.Popen(api_command(endpoints, data_dir))
        processes.append(api)
        wait_ready(f"{endpoints.api_url}/healthz", api, "API", ready_timeout_s)
        ui = subprocess.Popen(ui_command(endpoints))
        processes.append(ui)
        wait_ready(f"{endpoints.ui_url}/_stcore/health", ui, "web UI", ready_timeout_s)
        announce(
            f"ragserve is up. Open the web UI: {endpoints.ui_url}\n"
            f"API: {endpoints.api_url} (OpenAPI docs at {endpoints.api_url}/docs). "
            "Ctrl-C stops both."
        )
        while True:
            for name, process in (("API", api), ("web UI", ui)):
                if process.poll() is not None:
                    raise LaunchError(f"the {name} exited with code {process.returncode}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)
        signal.signal(signal.SIGTERM, previous)
