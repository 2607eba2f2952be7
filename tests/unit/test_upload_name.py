"""Client file names made safe to store and show."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragserve.ingestion import upload_name


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\notes.md", "notes.md"),
        ("a;rm -rf $HOME.txt", "a_rm -rf _HOME.txt"),
        ("..", "upload"),
        ("", "upload"),
        ("résumé 2024.pdf", "résumé 2024.pdf"),
    ],
)
def test_names_keep_their_last_component_without_unsafe_characters(
    given_name: str, expected: str
) -> None:
    """Only the base name survives, with unsafe characters replaced."""
    assert upload_name(given_name) == expected


def test_long_names_keep_their_suffix() -> None:
    """A name cut to 200 characters still ends in its file type."""
    name = upload_name("x" * 500 + ".pdf")
    assert len(name) == 200
    assert name.endswith(".pdf")


@given(st.text())
def test_any_name_is_a_safe_single_component(name: str) -> None:
    """Whatever a client sends, the result is one short path component."""
    cleaned = upload_name(name)
    assert 0 < len(cleaned) <= 200
    assert "/" not in cleaned
    assert "\\" not in cleaned
    assert cleaned not in (".", "..")
    assert not any(ord(c) < 32 for c in cleaned)
