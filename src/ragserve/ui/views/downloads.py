"""A button that downloads a document's original file, fetched only when it is pressed."""

from __future__ import annotations

import streamlit as st

from ragserve.ui.client import ApiClient


def file_name_of(source: str, fallback: str) -> str:
    """The last part of a document's source path or URL."""
    return source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or fallback


def original_button(
    client: ApiClient, collection: str, document_id: str, source: str, mime_type: str, key: str
) -> None:
    """Streamlit calls ``fetch`` when the button is pressed, after this run's client is
    closed, so it uses a client of its own. A failure shows Streamlit's "Failed to generate
    file for download" and is logged by the UI server."""

    def fetch() -> bytes:
        with client.copy() as own:
            return own.document_original(collection, document_id).data

    name = file_name_of(source, document_id)
    st.download_button(
        f"Download {name}",
        data=fetch,
        file_name=name,
        mime=mime_type,
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )
