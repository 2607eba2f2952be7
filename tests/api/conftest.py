"""Fixtures for the API suites: real servers over real HTTP (see ``api_server.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_server import ApiServer, start_api_server
from cluster import cluster_mode, start_cluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In cluster mode, run the tests of the shared server only: the others start servers
    of their own, which a cluster run would merely repeat."""
    if not cluster_mode():
        return
    kept = [item for item in items if "api_server" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Derived model files (the fp32 ONNX graph) shared by every server of the session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    """One server for the session: embedded defaults, auth on, a generous rate limit; in
    cluster mode (``RAGSERVE_TEST_CLUSTER=1``) two replicas and a Celery worker on
    PostgreSQL and Redis instead (see ``cluster.py``)."""
    base = tmp_path_factory.mktemp("api")
    start = start_cluster if cluster_mode() else start_api_server
    with start(base, model_cache, {"RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute"}) as s:
        yield s


@pytest.fixture(scope="session")
def shared_pdfs() -> Path:
    folder = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pdfs"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing: CI clones the repo beside shared/", pytrace=False)
    return folder
