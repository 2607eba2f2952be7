"""The tenant's collections with their counts; create one, delete one after a confirmation."""

from __future__ import annotations

import streamlit as st

from ragserve.ui import session
from ragserve.ui.client import ApiClient, ApiError
from ragserve.ui.models import Collection

CONFIRM_DELETE = "confirm_delete"


def render(client: ApiClient) -> None:
    st.header("Collections")
    session.show_notice()
    try:
        collections = client.collections()
    except ApiError as exc:
        st.error(exc.friendly())
        return
    if collections:
        rows = [
            {"collection": c.name, "documents": c.document_count, "chunks": c.chunk_count}
            for c in collections
        ]
        st.dataframe(rows, hide_index=True)
    else:
        st.info("No collections yet: create one below.")
    create(client)
    if collections:
        delete(client, collections)


def create(client: ApiClient) -> None:
    with st.form("create-collection", clear_on_submit=True):
        name = st.text_input("New collection", placeholder="letters, digits, - _ .").strip()
        submitted = st.form_submit_button("Create")
    if not submitted:
        return
    if not name:
        st.error("Enter a name for the collection.")
        return
    try:
        client.create_collection(name)
    except ApiError as exc:
        st.error(exc.friendly())
        return
    session.notify(f"Collection {name} created.")
    st.rerun()


def delete(client: ApiClient, collections: list[Collection]) -> None:
    """Two steps: pick and press Delete, then confirm (or cancel)."""
    by_name = {c.name: c for c in collections}
    pending = by_name.get(st.session_state.get(CONFIRM_DELETE, ""))
    if pending is None:
        name = st.selectbox("Collection to delete", list(by_name), key="delete-name")
        if st.button("Delete…", key="delete") and name is not None:
            st.session_state[CONFIRM_DELETE] = name
            st.rerun()
        return
    st.warning(
        f"Delete {pending.name} with its {pending.document_count} documents and "
        f"{pending.chunk_count} chunks? This cannot be undone."
    )
    confirm, cancel = st.columns(2)
    if confirm.button("Yes, delete", key="delete-confirm", type="primary"):
        del st.session_state[CONFIRM_DELETE]
        try:
            client.delete_collection(pending.name)
        except ApiError as exc:
            st.error(exc.friendly())
            return
        session.notify(f"Collection {pending.name} deleted.")
        st.rerun()
    if cancel.button("Cancel", key="delete-cancel"):
        del st.session_state[CONFIRM_DELETE]
        st.rerun()
