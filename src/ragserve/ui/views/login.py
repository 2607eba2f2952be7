"""Sign in with an API key; the key is checked against the API before it is kept."""

from __future__ import annotations

import streamlit as st

from ragserve.ui import session
from ragserve.ui.client import ApiClient, ApiError


def render(api_url: str, timeout: float) -> None:
    st.title("ragserve")
    st.caption(f"API: {api_url}")
    with st.form("sign-in"):
        key = st.text_input("API key", type="password", placeholder="rsk_…").strip()
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    if not key:
        st.error("Enter your API key.")
        return
    try:
        with ApiClient(api_url, key, timeout) as client:
            client.collections()  # any key with the read scope may list collections
    except ApiError as exc:
        st.error(exc.friendly())
        return
    session.sign_in(key)
    st.rerun()
