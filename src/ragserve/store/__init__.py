"""Stores by URL scheme: ``sqlite:///path.db`` (embedded default) and ``postgresql://`` (also
``postgres://`` and ``postgresql+psycopg://``; needs the ``postgres`` extra).

Backends register exactly like plugins would; each factory imports its module lazily so an
optional dependency is needed only when its scheme is used.
"""

from __future__ import annotations

from ragserve.config import StoreSettings
from ragserve.errors import ConfigError, MissingDependencyError
from ragserve.registry import Registry
from ragserve.store.base import Store

stores: Registry[StoreSettings, Store] = Registry("store")


@stores.register("sqlite")
def _sqlite(settings: StoreSettings) -> Store:
    from ragserve.store.sqlite import SqliteStore

    return SqliteStore.from_url(settings.url, busy_timeout_ms=settings.busy_timeout_ms)


# Modules of the "postgres" extra, by the distribution that provides them.
_POSTGRES_PACKAGES = {"psycopg": "psycopg", "psycopg_pool": "psycopg-pool", "pgvector": "pgvector"}


@stores.register("postgresql")
@stores.register("postgres")
def _postgres(settings: StoreSettings) -> Store:
    try:
        from ragserve.store.postgres import PostgresStore
    except ImportError as exc:
        package = _POSTGRES_PACKAGES.get((exc.name or "").split(".")[0])
        if package is None:
            raise
        raise MissingDependencyError(package, "postgres") from exc

    return PostgresStore.from_url(settings.url, busy_timeout_ms=settings.busy_timeout_ms)


def url_scheme(url: str) -> str:
    """The backend name in a store URL: ``sqlite:///x.db`` → ``sqlite``."""
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise ConfigError(
            f"store URL {url!r} has no scheme; available: "
            + ", ".join(f"{name}://..." for name in stores.names())
        )
    return scheme.split("+", 1)[0].lower()


def open_store(settings: StoreSettings) -> Store:
    """Open the store ``settings.url`` names (use ``Settings.store_url`` to apply the default).

    Raises ``UnknownBackendError`` for a scheme no backend registered, listing the ones that did.
    """
    if not settings.url:
        raise ConfigError(
            "store.url is empty; pass Settings.store_url, which defaults to "
            "sqlite:///<data_dir>/ragserve.db"
        )
    return stores.create(url_scheme(settings.url), settings)


__all__ = ["Store", "open_store", "stores", "url_scheme"]
