"""Fixtures for the UI suites: a real ``ragserve serve`` (see ``tests/api/api_server.py``)
holding one small document, and a key for it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# api_server lives beside the API suites; pytest puts only this folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_server import ApiServer, start_api_server
from ui_data import COLLECTION, DOCUMENT, TENANT


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Derived model files shared by every server of the session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    """A server on the embedded defaults (extractive answers) with the ``moons`` collection."""
    env = {"RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute"}
    with start_api_server(tmp_path_factory.mktemp("ui"), model_cache, env) as server:
        with server.client(server.key(TENANT)) as client:
            response = client.post(
                f"/v1/collections/{COLLECTION}/documents/text",
                json={"documents": [{"source": "zarnak.txt", "title": "Zarnak", "text": DOCUMENT}]},
            )
        assert response.status_code == 200, response.text
        yield server


@pytest.fixture
def ui_key(ui_server: ApiServer) -> str:
    """An admin key of the test tenant."""
    return ui_server.key(TENANT)
