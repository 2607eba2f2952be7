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

CHATS = "chats"
REASK = "reask"
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
    try:
        names = [c.name for c in client.collections()]
    except ApiError as exc:
        st.error(exc.friendly())
        return
    if not names:
        st.info("Create a collection first, on the Collections page.")
        return
    collection = st.selectbox("Collection", names, key="chat-collection") or names[0]
    turns: list[ChatTurn] = st.session_state.setdefault(CHATS, {}).setdefault(collection, [])
    for index, turn in enumerate(turns):
        show(client, turn, last=index == len(turns) - 1)
    question = st.chat_input("Ask a question about your documents")
    question = question or st.session_state.pop(REASK, None)
    if question:
        ask(client, collection, turns, question)


def show(client: ApiClient, turn: ChatTurn, *, last: bool) -> None:
    with st.chat_message(turn.role):
        if turn.error is not None:
            st.error(turn.error)
            return
        st.markdown(turn.text)
        if turn.role == "assistant":
            show_sources(turn)
            show_config(turn.done)
            actions(client, turn, last=last)


def show_sources(turn: ChatTurn) -> None:
    """The cited passages: document name and page, the snippet in an expander."""
    for source in turn.cited_sources:
        with st.expander(source.label):
            st.markdown(source.snippet)


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
    up, down, again = st.columns([1, 1, 6])
    if up.button("👍", key=f"up-{answer_id}", help="a good answer"):
        send_feedback(client, turn, "up")
    if down.button("👎", key=f"down-{answer_id}", help="a poor answer"):
        send_feedback(client, turn, "down")
    if turn.feedback is not None:
        st.caption(f"Your feedback: thumbs {turn.feedback}")
    if last and again.button("Regenerate", key="regenerate"):
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
