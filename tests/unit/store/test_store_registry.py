"""Opening a store from settings: the URL scheme picks the backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragserve.config import Settings, StoreSettings
from ragserve.errors import ConfigError, MissingDependencyError, UnknownBackendError
from ragserve.store import open_store, stores, url_scheme
from ragserve.store.postgres import PostgresStore
from ragserve.store.sqlite import SqliteStore


def test_sqlite_url_opens_a_file_creating_its_folders(tmp_path: Path) -> None:
    """``sqlite:////abs/path.db`` creates missing parent folders and the file."""
    path = tmp_path / "a" / "b" / "ragserve.db"
    store = open_store(StoreSettings(url=f"sqlite:///{path}", busy_timeout_ms=1234))
    try:
        assert isinstance(store, SqliteStore)
        assert path.exists()
    finally:
        store.close()


def test_relative_sqlite_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///data/x.db`` lands under the current directory, as does the default URL."""
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///data/x.db", Settings().store_url):
        store = open_store(StoreSettings(url=url))
        store.close()
    assert (tmp_path / "data" / "x.db").exists()
    assert (tmp_path / ".ragserve" / "ragserve.db").exists()


def test_unknown_scheme_lists_the_available_ones() -> None:
    """An unregistered scheme fails with the names that are registered."""
    with pytest.raises(UnknownBackendError, match="sqlite"):
        open_store(StoreSettings(url="mysql://host/db"))


@pytest.mark.parametrize("url", ["", "no-scheme.db"])
def test_missing_url_or_scheme_is_a_config_error(url: str) -> None:
    """An empty URL or one without a scheme is a configuration error naming the fix."""
    with pytest.raises(ConfigError):
        open_store(StoreSettings(url=url))


def test_url_scheme_ignores_a_driver_suffix() -> None:
    """``postgresql+psycopg://`` selects the ``postgresql`` backend."""
    assert url_scheme("postgresql+psycopg://u@h/db") == "postgresql"
    assert url_scheme("SQLITE:///x.db") == "sqlite"
    assert "sqlite" in stores.names()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_open_the_server_store(postgres_url: str, scheme: str) -> None:
    """Each PostgreSQL spelling opens a PostgresStore; the store's options stay out of libpq."""
    url = scheme + postgres_url.removeprefix("postgresql") + "?keyword_engine=tsvector"
    store = open_store(StoreSettings(url=url))
    try:
        assert isinstance(store, PostgresStore)
        assert store.keyword_engine == "tsvector"
        store.ping()
    finally:
        store.close()


@pytest.mark.parametrize("module", ["psycopg", "psycopg_pool", "pgvector"])
def test_missing_postgres_packages_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    """Without any package of the postgres extra, the error says how to install it."""
    loaded = [m for m in sys.modules if m.startswith(("ragserve.store.postgres", module + "."))]
    for name in loaded:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ragserve\[postgres\]'"):
        open_store(StoreSettings(url="postgresql://u@127.0.0.1:1/db"))
