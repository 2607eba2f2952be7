"""Fixtures for the eval tests: the shared data folder that holds the real datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

# tests/unit/eval/conftest.py -> parents[3] is the repository root; data lives beside it.
SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (../shared/data from the repository root); fails when absent."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"shared data folder {SHARED_DATA.resolve()} is missing: the eval loader tests need "
            "scifact/ and qa/ from it (see ../shared/data/SOURCES.md)",
            pytrace=False,
        )
    return SHARED_DATA
