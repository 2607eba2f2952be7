"""Waiting for Streamlit: every interaction reruns the script, and elements of the previous
run stay on screen (stale) until the new run replaces them."""

from __future__ import annotations

import contextlib

from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

APP = '[data-testid="stApp"]'
# The script's state as the frontend knows it (Streamlit sets this attribute for its own tests).
RUNNING = f'{APP}[data-test-script-state="running"], {APP}[data-test-script-state="rerunRequested"]'
IDLE = f'{APP}[data-test-script-state="notRunning"]'
# The "Running…" indicator (and Stop button) in the top-right corner.
STATUS = '[data-testid="stStatusWidget"]'


def wait_for_app(page: Page) -> None:
    """Wait until the first run of the script after loading the page has finished."""
    page.locator(IDLE).wait_for(state="attached")
    page.locator(STATUS).wait_for(state="hidden")


def wait_for_rerun(page: Page, expected: Locator | None = None, *, start_ms: float = 2000) -> None:
    """After an action, wait for the rerun it triggers to start (briefly: it may be over
    already) and to finish, then for ``expected`` to be visible."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.locator(f"{RUNNING}, {STATUS}").first.wait_for(state="attached", timeout=start_ms)
    wait_for_app(page)
    if expected is not None:
        expect(expected).to_be_visible()


def dataframe_cells(scope: Page | Locator) -> Locator:
    """The body cells of the ``st.dataframe`` in ``scope``, row by row. The grid is drawn on a
    canvas; these are the hidden accessibility table's cells (only rows scrolled into view)."""
    frame = scope.get_by_test_id("stDataFrame")
    return frame.get_by_role("gridcell", include_hidden=True)
