"""The collection picker the chat and documents pages share."""

from __future__ import annotations

import streamlit as st

from ragserve.ui.client import ApiClient, ApiError


def pick_collection(client: ApiClient, key: str) -> str | None:
    """The chosen collection; None (with the reason shown) when there is none to choose."""
    try:
        names = [c.name for c in client.collections()]
    except ApiError as exc:
        st.error(exc.friendly())
        return None
    if not names:
        st.info("Create a collection first, on the Collections page.")
        return None
    return st.selectbox("Collection", names, key=key) or names[0]
