"""The web UI in headless Chromium against a real API: what a user clicks and sees."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from screenshots import Screenshots
from streamlit_page import dataframe_cells, wait_for_rerun
from ui_flows import open_page, open_ui, sign_in_with_key


def test_sign_in_and_create_collection(
    page: Page, ui_url: str, admin_key: str, shot: Screenshots
) -> None:
    """An admin signs in with an API key, creates a collection and sees it in the table."""
    open_ui(page, ui_url)
    expect(page.get_by_role("tab", name="API key")).to_be_visible()
    shot(page, "sign-in")
    sign_in_with_key(page, admin_key)
    shot(page, "signed-in")

    open_page(page, "Collections")
    expect(page.get_by_text("No collections yet")).to_be_visible()
    page.get_by_label("New collection").fill("e2e-notes")
    page.get_by_role("button", name="Create", exact=True).click()
    wait_for_rerun(page, page.get_by_text("Collection e2e-notes created."))

    expect(dataframe_cells(page)).to_have_text(["e2e-notes", "0", "0"])
    shot(page, "collection-created")
