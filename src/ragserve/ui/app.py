"""The web UI's entry point.

Run it with ``streamlit run src/ragserve/ui/app.py`` (or ``python -m ragserve.ui.app``, which
calls ``main``); point it at an API with ``RAGSERVE_UI__API_URL`` (default
``http://127.0.0.1:8000``). Signed out, only the sign-in page exists; signed in, the sidebar
navigates between pages and signs out.
"""

from __future__ import annotations

import contextlib
import sys
from functools import partial

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from ragserve.ui import session
from ragserve.ui.client import ApiClient, ApiError
from ragserve.ui.models import Me
from ragserve.ui.settings import UiSettings
from ragserve.ui.views import chat, collections, documents, insights, login


def run(settings: UiSettings) -> None:
    """One run of the script: Streamlit calls it on every interaction."""
    st.set_page_config(page_title="ragserve", layout="wide")
    key = session.api_key()
    if key is None:
        sign_in = partial(login.render, settings.api_url, settings.timeout_s)
        page = st.Page(sign_in, title="Sign in", url_path="login", default=True)
        st.navigation([page], position="hidden").run()
        return
    with ApiClient(settings.api_url, key, settings.timeout_s) as client:
        me = whoami(client)
        if me is None:  # the session expired or the key was revoked: back to signing in
            session.sign_out()
            session.notify_sign_in("Your session has ended. Sign in again.")
            st.rerun()
        pages = [
            st.Page(
                partial(collections.render, client),
                title="Collections",
                url_path="collections",
                default=True,
            ),
            st.Page(
                partial(documents.render, client, can_write=me.can_write),
                title="Documents",
                url_path="documents",
            ),
            st.Page(partial(chat.render, client), title="Chat", url_path="chat"),
            st.Page(
                partial(insights.render, client, is_admin=me.is_admin),
                title="Insights",
                url_path="insights",
            ),
        ]
        navigation = st.navigation(pages)
        with st.sidebar:
            st.caption(f"Tenant {me.tenant} · {', '.join(me.scopes)}")
            if me.expires_at:
                st.caption(f"Session until {me.expires_at[:16].replace('T', ' ')} UTC")
            st.caption(f"API: {settings.api_url}")
            if st.button("Sign out", key="sign-out"):
                with contextlib.suppress(ApiError):  # the API may be gone; forget the key anyway
                    client.logout()
                session.sign_out()
                st.rerun()
        navigation.run()


def whoami(client: ApiClient) -> Me | None:
    """Who the key is; None when the API refuses it (401). The API being unreachable is not
    a reason to sign out: pages show that error themselves."""
    try:
        return client.me()
    except ApiError as exc:
        if exc.status == 401:
            return None
        return Me(tenant="?", scopes=(), session=False, expires_at=None)


def main() -> None:
    """Start the Streamlit server on this file (what ``ragserve ui`` will call)."""
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", __file__, *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    if (
        get_script_run_ctx(suppress_warning=True) is None
    ):  # ``python -m ragserve.ui.app``: start the server
        main()
    else:  # Streamlit (or AppTest) runs this file as the script
        run(UiSettings())
