"""Steps through the ragserve web UI that most browser tests share."""

from __future__ import annotations

from playwright.sync_api import Page
from streamlit_page import wait_for_app, wait_for_rerun


def open_ui(page: Page, ui_url: str) -> None:
    """Load the UI and wait for its first run (signed out: the sign-in page)."""
    page.goto(ui_url)
    wait_for_app(page)


def sign_in_with_key(page: Page, key: str) -> None:
    """Sign in on the "API key" tab; return once the sidebar shows "Sign out"."""
    page.get_by_role("tab", name="API key").click()
    # get_by_label("API key") would also match the tab panel, which the tab labels.
    panel = page.get_by_role("tabpanel", name="API key")
    panel.get_by_role("textbox", name="API key").fill(key)
    panel.get_by_role("button", name="Sign in", exact=True).click()
    wait_for_rerun(page, page.get_by_role("button", name="Sign out"))


def open_page(page: Page, title: str) -> None:
    """Open one of the pages in the sidebar's navigation and wait for its header."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    wait_for_rerun(page, page.get_by_role("heading", name=title))


def create_collection(page: Page, name: str) -> None:
    """On the Collections page: create ``name`` and wait for the notice."""
    open_page(page, "Collections")
    page.get_by_label("New collection").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    wait_for_rerun(page, page.get_by_text(f"Collection {name} created."))
