"""A collection's documents: upload many files with per-file progress, search, download, delete.

Each file goes up in its own request, so one refused file (too large, unsupported type) never
stops the others; accepted files are followed through the job API until indexed or failed.
"""

from __future__ import annotations

import time

import streamlit as st

from ragserve.ui import session
from ragserve.ui.client import ApiClient, ApiError
from ragserve.ui.models import Document
from ragserve.ui.upload import FileProgress, UploadBatch
from ragserve.ui.views.downloads import original_button
from ragserve.ui.views.picker import pick_collection

PAGE_SIZE = 50
POLL_INTERVAL_S = 0.5
MAX_WAIT_S = 600.0
UPLOADER = "uploader-generation"
BATCH = "upload-batch"
CONFIRM_DELETE = "confirm-delete-document"


def render(client: ApiClient, *, can_write: bool) -> None:
    st.header("Documents")
    session.show_notice()
    collection = pick_collection(client, "documents-collection")
    if collection is None:
        return
    if can_write:
        upload_section(client, collection)
    document_list(client, collection, can_write=can_write)


# ---- upload -------------------------------------------------------------------------------


def upload_section(client: ApiClient, collection: str) -> None:
    st.subheader("Upload")
    generation = st.session_state.setdefault(UPLOADER, 0)
    files = st.file_uploader(
        "PDF, Markdown, HTML or text files",
        accept_multiple_files=True,
        key=f"uploader-{generation}",
    )
    if st.button("Upload and index", type="primary", disabled=not files, key="upload"):
        batch = UploadBatch(collection, [FileProgress(f.name) for f in files or []])
        st.session_state[BATCH] = batch
        st.session_state[UPLOADER] = generation + 1  # empties the uploader on the next run
        send(client, batch, [(f.name, f.getvalue()) for f in files or []])
        st.rerun()
    shown = st.session_state.get(BATCH)
    if isinstance(shown, UploadBatch) and shown.collection == collection:
        follow(client, shown)


def send(client: ApiClient, batch: UploadBatch, files: list[tuple[str, bytes]]) -> None:
    """One request per file: a refusal is that file's error, never the batch's."""
    box = st.empty()
    for index, (name, data) in enumerate(files):
        box.progress(index / len(files), text=f"Uploading {name} ({index + 1}/{len(files)})")
        item = batch.files[index]
        try:
            (result,) = client.upload(collection=batch.collection, files=[(name, data)])
        except ApiError as exc:
            item.refused(exc.friendly())
            if exc.code == "unreachable":
                for rest in batch.files[index + 1 :]:
                    rest.refused(exc.friendly())
                break
            continue
        item.accepted(result)
    box.empty()


def follow(client: ApiClient, batch: UploadBatch) -> None:
    """Each file's row, polled through the job API until every job has finished."""
    st.caption(batch.summary)
    rows = [st.empty() for _ in batch.files]
    deadline = time.monotonic() + MAX_WAIT_S
    while True:
        for row, item in zip(rows, batch.files, strict=True):
            draw(row.container(), item)
        pending = batch.pending
        if not pending:
            break
        if time.monotonic() > deadline:
            st.info("Indexing continues in the background; the Insights page lists the jobs.")
            return
        time.sleep(POLL_INTERVAL_S)
        for item in pending:
            assert item.job_id is not None
            try:
                item.update(client.job(item.job_id))
            except ApiError as exc:
                item.lost(exc.friendly())
    if not batch.announced:
        batch.announced = True
        st.rerun()  # redraw the document list with the new documents


def draw(box: st.delta_generator.DeltaGenerator, item: FileProgress) -> None:
    if item.error is not None:
        box.error(f"**{item.name}** — {item.error}", icon=":material/error:")
    elif item.finished:
        box.success(f"**{item.name}** — {item.message}", icon=":material/check_circle:")
    else:
        box.progress(item.progress, text=f"{item.name} — {item.message}")


# ---- the list -----------------------------------------------------------------------------


def document_list(client: ApiClient, collection: str, *, can_write: bool) -> None:
    st.subheader("In this collection")
    query = st.text_input("Search by name", key="documents-query", placeholder="part of a name")
    try:
        first = client.documents(collection, limit=PAGE_SIZE, query=query.strip())
    except ApiError as exc:
        st.error(exc.friendly())
        return
    pages = max(1, -(-first.total // PAGE_SIZE))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="documents-page"))
    listing = first
    if page > 1:
        try:
            listing = client.documents(
                collection, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, query=query.strip()
            )
        except ApiError as exc:
            st.error(exc.friendly())
            return
    if not listing.documents:
        st.info("No document matches." if query.strip() else "No documents yet: upload some.")
        return
    st.caption(f"{first.total} document{'s' if first.total != 1 else ''}")
    st.dataframe(
        [
            {
                "name": d.name,
                "type": d.mime_type,
                "pages": d.page_count,
                "chunks": d.chunk_count,
                "source": d.source,
            }
            for d in listing.documents
        ],
        hide_index=True,
    )
    actions(client, collection, listing.documents, can_write=can_write)


def actions(
    client: ApiClient, collection: str, documents: list[Document], *, can_write: bool
) -> None:
    """Download the original of a document, or delete it after a confirmation."""
    by_id = {d.id: d for d in documents}
    chosen = st.selectbox(
        "Document",
        list(by_id),
        format_func=lambda document_id: by_id[document_id].name,
        key="documents-chosen",
    )
    if chosen is None:
        return
    document = by_id[chosen]
    download, delete = st.columns(2)
    with download:
        original_button(
            client, collection, document.id, document.source, document.mime_type,
            key=f"download-{document.id}",
        )  # fmt: skip
    if can_write:
        with delete:
            delete_flow(client, collection, document)


def delete_flow(client: ApiClient, collection: str, document: Document) -> None:
    if st.session_state.get(CONFIRM_DELETE) != document.id:
        if st.button("Delete…", key="document-delete"):
            st.session_state[CONFIRM_DELETE] = document.id
            st.rerun()
        return
    st.warning(f"Delete {document.name} and its {document.chunk_count} chunks?")
    confirm, cancel = st.columns(2)
    if confirm.button("Yes, delete", key="document-delete-confirm", type="primary"):
        del st.session_state[CONFIRM_DELETE]
        try:
            client.delete_document(collection, document.id)
        except ApiError as exc:
            st.error(exc.friendly())
            return
        session.notify(f"{document.name} deleted.")
        st.rerun()
    if cancel.button("Cancel", key="document-delete-cancel"):
        del st.session_state[CONFIRM_DELETE]
        st.rerun()
