"""Fixtures for tests that drive the real service and CLI on the embedded defaults."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragserve.config import EmbedSettings, Settings
from ragserve.service import RagService, build_service

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's evaluation data beside the repo; fails (never skips) when absent."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: CI clones the repo beside shared/", pytrace=False)
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for derived model files (the fp32 ONNX graph) shared by the whole session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path) -> Settings:
    """Embedded defaults in a fresh data directory."""
    return Settings(data_dir=tmp_path / "data", embed=EmbedSettings(cache_dir=model_cache))


@pytest.fixture
def service(settings: Settings) -> Iterator[RagService]:
    svc = build_service(settings)
    yield svc
    svc.close()


@pytest.fixture
def corpus(tmp_path: Path, shared_data: Path) -> Path:
    """A folder of real documents: two PDFs, Markdown, HTML and text."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(shared_data / "pdfs" / "federal-register-2020-17221.pdf", folder)
    shutil.copy(shared_data / "pdfs" / "pdflatex-4-pages.pdf", folder)
    (folder / "notes.md").write_text(
        "# Release notes\n\nVersion 2.4 adds streaming answers.\n\n"
        "The retention period for audit logs is 90 days.\n"
    )
    (folder / "page.html").write_text(
        "<html><head><title>Office hours</title><script>var x = 1;</script></head>"
        "<body><nav>Home | About</nav><main><p>The support desk opens at 8 am on weekdays."
        "</p></main></body></html>"
    )
    (folder / "plain.txt").write_text("The cafeteria serves lunch from noon until 2 pm.\n")
    return folder
