"""What the UI keeps per browser session: the API key (only here, never on disk) and notices
that must survive a rerun."""

from __future__ import annotations

import streamlit as st

API_KEY = "api_key"
NOTICE = "notice"
SIGN_IN_NOTICE = "sign_in_notice"


def api_key() -> str | None:
    key = st.session_state.get(API_KEY)
    return key if isinstance(key, str) and key else None


def sign_in(key: str) -> None:
    st.session_state[API_KEY] = key


def sign_out() -> None:
    """Forget the key and everything else of the session (chats included)."""
    st.session_state.clear()


def notify_sign_in(message: str) -> None:
    """Show ``message`` as a warning on the sign-in page (after ``sign_out``)."""
    st.session_state[SIGN_IN_NOTICE] = message


def show_sign_in_notice() -> None:
    message = st.session_state.pop(SIGN_IN_NOTICE, None)
    if message:
        st.warning(message)


def notify(message: str) -> None:
    """Show ``message`` as a success on the next run (e.g. after ``st.rerun``)."""
    st.session_state[NOTICE] = message


def show_notice() -> None:
    message = st.session_state.pop(NOTICE, None)
    if message:
        st.success(message)
