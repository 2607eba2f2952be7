"""The web UI as a real ``ragserve ui`` process (Streamlit, headless) on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

RAGSERVE = Path(sys.executable).parent / "ragserve"


@contextmanager
def start_ui(api_url: str, port: int, log_path: Path) -> Iterator[str]:
    """Start ``ragserve ui`` against ``api_url``, yield its URL, stop it after."""
    environment = {
        **os.environ,
        "STREAMLIT_SERVER_HEADLESS": "true",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        # No "File change. Rerun" prompt when someone edits the UI during a run.
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    }
    command = [str(RAGSERVE), "ui", "--port", str(port), "--host", "127.0.0.1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--api-url", api_url], stdout=log, stderr=subprocess.STDOUT, env=environment
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log_path, timeout_s=60.0)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> None:
    """Return once Streamlit's health endpoint answers "ok"; fail with the log otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"ragserve ui exited with {process.returncode}:\n" + log_path.read_text()[-3000:],
                pytrace=False,
            )
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"ragserve ui not healthy after {timeout_s:.0f} s:\n" + log_path.read_text()[-3000:],
        pytrace=False,
    )
