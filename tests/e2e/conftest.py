"""Fixtures for the browser tests: a real API, the web UI as ``ragserve ui`` on it, and
headless Chromium (Debian's ``/usr/bin/chromium``, never a downloaded one) driven by
Playwright. Every test here is marked ``e2e``."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

# api_server lives beside the API suites; pytest puts only this folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_server import ApiServer, free_port, start_api_server
from screenshots import Screenshots
from ui_process import start_ui

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
HERE = Path(__file__).resolve().parent
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of this folder ``e2e`` (``-m "not e2e"`` leaves them out)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, for ``page`` to see whether the test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Derived model files for the session's API server."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    """A ``ragserve serve`` on the embedded defaults, with a generous rate limit."""
    env = {"RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute"}
    with start_api_server(tmp_path_factory.mktemp("e2e-api"), model_cache, env) as server:
        yield server


@pytest.fixture(scope="session")
def ui_url(api_server: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a ``ragserve ui`` talking to ``api_server``."""
    log_path = tmp_path_factory.mktemp("e2e-ui") / "ui.log"
    with start_ui(api_server.url, free_port(), log_path) as url:
        yield url


@pytest.fixture
def admin_key(api_server: ApiServer) -> str:
    """An admin key of a tenant of its own (no collections yet)."""
    return api_server.key(f"e2e-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for one module: a live sync Playwright blocks ``asyncio.run`` in
    this thread, so it must not outlive the browser tests."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def shot() -> Screenshots:
    """``shot(page, "name")`` saves the next numbered full-page PNG among the artifacts."""
    return Screenshots()


@pytest.fixture
def page(browser: Browser, shot: Screenshots, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh context (1400×1000); saved as ``FAILED-<test>.png`` if the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    call = request.node.stash.get(REPORTS, {}).get("call")
    try:
        if call is not None and call.failed:
            shot.failure(tab, request.node.name)
    finally:
        context.close()
