"""Chat with a collection: streamed answers, their cited sources, feedback and regenerate.

Each collection's conversation lives in the session; earlier turns go with every question so
follow-ups are understood.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import streamlit as st

from ragserve.ui.client import ApiClient, ApiError
from ragserve.ui.models import Done, Source, Sources, StreamEvent, Token
from ragserve.ui.views.citation import open_source
from ragserve.ui.views.picker import pick_collection

CHATS = "chats"
REASK = "reask"
THUMBS_UP = ":material/thumb_up:"
THUMBS_DOWN = ":material/thumb_down:"
MAX_HISTORY_TURNS = 10  # the server's default limit is 20; recent turns matter most


@dataclass
class ChatTurn:
    role: Literal["user", "assistant"]
    text: str
    sources: list[Source] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    done: Done | None = None
    error: str | None = None
    feedback: str | None = None

    @property
    def cited_sources(self) -> list[Source]:
        return [s for s in self.sources if s.number in self.cited]


def render(client: ApiClient) -> None:
    st.header("Chat")
    collection = pick_collection(client, "chat-collection")
    if collection is None:
        return
    turns: list[ChatTurn] = st.session_state.setdefault(CHATS, {}).setdefault(collection, [])
    for index, turn in enumerate(turns):
        show(client, collection, turn, index=index, last=index == len(turns) - 1)
    question = st.chat_input("Ask a question about your documents")
    question = question or st.session_state.pop(REASK, None)
    if question:
        ask(client, collection, turns, question)


def show(client: ApiClient, collection: str, turn: ChatTurn, *, index: int, last: bool) -> None:
    with st.chat_message(turn.role):
        if turn.error is not None:
            st.error(turn.error)
            return
        st.markdown(turn.text)
        if turn.role == "assistant":
            show_sources(client, collection, turn, index)
            show_config(turn.done)
            actions(client, turn, last=last)


def show_sources(client: ApiClient, collection: str, turn: ChatTurn, index: int) -> None:
    """One button per cited source, ``[n] name, page p``: it opens the page with the passage."""
    cited = turn.cited_sources
    if not cited:
        return
    st.caption("Sources — open one to read the cited passage in its page")
    for source in cited:
        if st.button(source.label, key=f"source-{index}-{source.number}", help=source.snippet):
            open_source(client, collection, source)


def show_config(done: Done | None) -> None:
    """Which configuration and variant answered: the API sends these to admins only."""
    if done is None or (done.config is None and done.variant is None):
        return
    parts = [f"config {done.config}" if done.config else ""]
    if done.experiment:
        parts.append(f"experiment {done.experiment}, variant {done.variant}")
    st.caption(" · ".join(p for p in parts if p))


def actions(client: ApiClient, turn: ChatTurn, *, last: bool) -> None:
    """Thumbs up/down (posted to the feedback API) and, on the last answer, regenerate."""
    if turn.done is None:
        return
    answer_id = turn.done.answer_id
    with st.container(horizontal=True):
        up = st.button(THUMBS_UP, key=f"up-{answer_id}", help="a good answer")
        down = st.button(THUMBS_DOWN, key=f"down-{answer_id}", help="a poor answer")
        again = last and st.button("Regenerate", key="regenerate", icon=":material/refresh:")
    if up or down:
        send_feedback(client, turn, "up" if up else "down")
    elif turn.feedback is not None:
        st.caption(f"Your feedback: thumbs {turn.feedback}")
    if again:
        regenerate()


def send_feedback(client: ApiClient, turn: ChatTurn, thumbs: Literal["up", "down"]) -> None:
    assert turn.done is not None
    try:
        client.feedback(turn.done.answer_id, thumbs=thumbs)
    except ApiError as exc:
        st.error(exc.friendly())
        return
    turn.feedback = thumbs
    st.success("Thanks — your feedback was recorded.")


def regenerate() -> None:
    """Drop the last question and its answer, and ask the question again."""
    collection = st.session_state["chat-collection"]
    turns: list[ChatTurn] = st.session_state[CHATS][collection]
    while turns and turns[-1].role == "assistant":
        turns.pop()
    if turns:
        st.session_state[REASK] = turns.pop().text
    st.rerun()


def ask(client: ApiClient, collection: str, turns: list[ChatTurn], question: str) -> None:
    """Stream the answer under the question, then keep both in the conversation."""
    history = [
        {"role": t.role, "content": t.text} for t in turns if t.error is None and t.text.strip()
    ][-MAX_HISTORY_TURNS:]
    turns.append(ChatTurn("user", question))
    with st.chat_message("user"):
        st.markdown(question)
    answer = ChatTurn("assistant", "")
    with st.chat_message("assistant"):
        try:
            streamed = st.write_stream(
                tokens(client.ask_stream(collection, question, history), answer)
            )
        except ApiError as exc:
            answer.error = exc.friendly()
            st.error(answer.error)
            turns.append(answer)
            return
    answer.text = streamed if isinstance(streamed, str) else "".join(map(str, streamed))
    turns.append(answer)
    st.rerun()  # draw the answer again with its sources and buttons


def tokens(events: Iterator[StreamEvent], answer: ChatTurn) -> Iterator[str]:
    """The answer's text as it streams; its sources and ``Done`` are kept on ``answer``."""
    for event in events:
        if isinstance(event, Token):
            yield event.text
        elif isinstance(event, Sources):
            answer.sources, answer.cited = event.sources, event.cited
        elif isinstance(event, Done):
            answer.done = event
