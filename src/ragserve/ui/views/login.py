"""Sign in with an API key, or with a username and password (a session key that expires);
either is checked against the API before it is kept."""

from __future__ import annotations

import streamlit as st

from ragserve.ui import session
from ragserve.ui.client import ApiClient, ApiError

WRONG_PASSWORD = "Wrong username or password, or the account is locked. Try again later."


def render(api_url: str, timeout: float) -> None:
    st.title("ragserve")
    st.caption(f"API: {api_url}")
    session.show_sign_in_notice()
    with_key, with_password = st.tabs(["API key", "Username and password"])
    with with_key:
        _key_form(api_url, timeout)
    with with_password:
        _password_form(api_url, timeout)


def _key_form(api_url: str, timeout: float) -> None:
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


def _password_form(api_url: str, timeout: float) -> None:
    with st.form("sign-in-password"):
        username = st.text_input("Username").strip()
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in with password", type="primary")
    if not submitted:
        return
    if not username or not password:
        st.error("Enter your username and password.")
        return
    try:
        with ApiClient(api_url, "", timeout) as client:
            token = client.login(username, password)
    except ApiError as exc:
        st.error(WRONG_PASSWORD if exc.status == 401 else exc.friendly())
        return
    session.sign_in(token)
    st.rerun()
