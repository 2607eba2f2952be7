"""A person's whole journey in the browser: upload a real PDF, ask about it, open the citation,
then look at the admin insight page. Screenshots of each step are the README's pictures."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect
from screenshots import Screenshots
from streamlit_page import wait_for_rerun
from ui_flows import create_collection, open_page, open_ui, sign_in_with_key

PDFS = Path(__file__).resolve().parents[3] / "shared" / "data" / "pdfs"
REGISTER = PDFS / "federal-register-2020-17221.pdf"  # 15 pages: an FAA proposed rule
LOCKED = PDFS / "libreoffice-writer-password.pdf"  # encrypted: refused with its reason
QUESTION = "By what date must the FAA receive comments on the proposed AD?"
FOLLOW_UP = "Which software would the proposed AD require installing?"
INDEXING_TIMEOUT_MS = 180_000

# Records the assistant message's text length each time the DOM changes, so the test can tell
# a streamed answer (many lengths) from one drawn at once.
WATCH_STREAM = """() => {
  window.__answerLengths = [];
  new MutationObserver(() => {
    const messages = document.querySelectorAll('[data-testid="stChatMessage"]');
    if (messages.length < 2) return;
    const text = messages[messages.length - 1].innerText || "";
    const lengths = window.__answerLengths;
    if (lengths[lengths.length - 1] !== text.length) lengths.push(text.length);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_upload_ask_and_open_the_cited_page(
    page: Page, ui_url: str, admin_key: str, shot: Screenshots
) -> None:
    open_ui(page, ui_url)
    sign_in_with_key(page, admin_key)
    create_collection(page, "regulations")

    # Upload: the PDF is indexed, the encrypted one is refused with its reason.
    open_page(page, "Documents")
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files([REGISTER, LOCKED])
    upload = page.get_by_role("button", name="Upload and index")
    expect(upload).to_be_enabled()
    upload.click()
    expect(page.get_by_text(re.compile(r"queued|indexing|indexed \("))).not_to_have_count(0)
    shot(page, "upload-in-progress")
    indexed = page.get_by_text(re.compile(r"federal-register-2020-17221\.pdf — indexed \(\d+"))
    expect(indexed).to_be_visible(timeout=INDEXING_TIMEOUT_MS)
    expect(
        page.get_by_text(re.compile(r"libreoffice-writer-password\.pdf — .*encrypted"))
    ).to_be_visible()
    wait_for_rerun(page, page.get_by_text("2 files: 1 indexed, 1 failed"))
    shot(page, "upload-progress")

    # Chat: the answer streams in and cites the PDF.
    open_page(page, "Chat")
    page.evaluate(WATCH_STREAM)
    page.get_by_test_id("stChatInputTextArea").fill(QUESTION)
    page.keyboard.press("Enter")
    answer = page.get_by_test_id("stChatMessage").nth(1)
    sources = page.get_by_role("button", name=re.compile(r"^\[\d+\] .*, page \d+$"))
    wait_for_rerun(page, sources.first)
    expect(answer).to_contain_text("September 21, 2020")
    expect(answer).to_contain_text(re.compile(r"\[\d+\]"))
    lengths = page.evaluate("window.__answerLengths")
    assert len([n for n in lengths if n > 0]) >= 3, f"the answer was not streamed: {lengths}"

    # A follow-up, and a thumbs-up on its answer (the experiments feedback API).
    page.get_by_test_id("stChatInputTextArea").fill(FOLLOW_UP)
    page.keyboard.press("Enter")
    follow_up = page.get_by_test_id("stChatMessage").nth(3)
    wait_for_rerun(page, follow_up.get_by_role("button", name=re.compile(r"^\[\d+\] ")).first)
    expect(follow_up).to_contain_text("software")
    follow_up.get_by_role("button", name="thumb_up").click()
    wait_for_rerun(page, page.get_by_text("Thanks — your feedback was recorded."))
    shot(page, "chat-citations")

    # The citation opens its page with the passage marked, and the original can be downloaded.
    label = sources.first.inner_text()
    page_number = int(label.rsplit("page ", 1)[1])
    sources.first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Page {page_number} of 15")).to_be_visible()
    passage = dialog.get_by_test_id("cited-passage")
    expect(passage).to_contain_text("September 21, 2020")
    dialog.get_by_text(f"Whole page {page_number}").click()
    whole_page = dialog.get_by_test_id("stExpanderDetails")
    expect(whole_page).to_contain_text("Thursday, August 6, 2020")  # the page's heading
    expect(whole_page.get_by_test_id("cited-passage-in-page")).to_contain_text("September 21, 2020")
    download_button = dialog.get_by_role("button", name="Download federal-register-2020-17221.pdf")
    expect(download_button).to_be_visible()
    shot(page, "citation-page")
    with page.expect_download() as download:
        download_button.click()
    assert Path(download.value.path()).read_bytes() == REGISTER.read_bytes()
    dialog.get_by_label("Close").click()
    expect(dialog).to_have_count(0)

    # Insights: the admin sees the answer's latency per stage and the cache.
    open_page(page, "Insights")
    expect(page.get_by_text("Questions today")).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Answers")).to_contain_text("2")
    latency = page.get_by_role("tabpanel", name="Answers and latency")
    stages = latency.get_by_test_id("stDataFrame").get_by_role("gridcell", include_hidden=True)
    expect(stages.filter(has_text=re.compile(r"^total$"))).to_have_count(1)
    page.set_viewport_size({"width": 1400, "height": 1500})  # the whole latency tab
    shot(page, "admin-insights")
