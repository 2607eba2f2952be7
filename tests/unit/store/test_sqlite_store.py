"""SQLite specifics of the embedded store: schema, pragmas, raw rows, the vector cache."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragserve.errors import BackendUnavailable, ConfigError
from ragserve.store import sqlite as sqlite_module
from ragserve.store.schema import MIGRATIONS
from ragserve.store.sqlite import SqliteStore
from ragserve.store.sqlite_connections import database_path
from ragserve.types import Matrix

Factory = Callable[..., Any]


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path)) as conn:
        yield conn


def counts(path: Path) -> dict[str, int]:
    """Rows in every table, FTS tables included (their shadow tables left out)."""
    with raw(path) as conn:
        names = [
            n
            for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if n in ("collections", "documents", "chunks") or re.fullmatch(r"fts_\d+", n)
        ]
        return {n: conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}


def test_new_file_gets_wal_and_recorded_migrations(
    db_path: Path, open_sqlite: Callable[[], SqliteStore]
) -> None:
    """Opening creates folders and file, switches to WAL and records each migration once."""
    open_sqlite()
    open_sqlite()  # a second opener migrates nothing
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = [n for (n,) in conn.execute("SELECT name FROM migrations ORDER BY rowid")]
    assert names == [name for name, _ in MIGRATIONS]


def test_delete_document_leaves_no_rows(
    db_path: Path, sqlite_store: SqliteStore, make_doc: Factory
) -> None:
    """After deleting the only document, every table (FTS included) is empty of it."""
    doc = make_doc("a.txt", ["alpha words", "beta words"])
    sqlite_store.put_document("t", "c", *doc)
    assert counts(db_path) == {"collections": 1, "documents": 1, "chunks": 2, "fts_1": 2}
    sqlite_store.delete_document("t", "c", doc[0].id)
    assert counts(db_path) == {"collections": 1, "documents": 0, "chunks": 0, "fts_1": 0}


def test_replace_keeps_fts_in_step(
    db_path: Path, sqlite_store: SqliteStore, make_doc: Factory
) -> None:
    """Replacing a document replaces its FTS rows one for one."""
    sqlite_store.put_document("t", "c", *make_doc("a.txt", ["one", "two", "three"]))
    sqlite_store.put_document("t", "c", *make_doc("a.txt", ["four"]))
    assert counts(db_path) == {"collections": 1, "documents": 1, "chunks": 1, "fts_1": 1}
    with raw(db_path) as conn:
        assert conn.execute("SELECT terms FROM fts_1").fetchall() == [("four",)]


def test_delete_collection_drops_its_fts_table(
    db_path: Path, sqlite_store: SqliteStore, make_doc: Factory
) -> None:
    """Deleting a collection removes its rows and its FTS table; other collections stay."""
    sqlite_store.ensure_collection("t", "other")
    sqlite_store.put_document("t", "c", *make_doc("a.txt", ["one", "two"]))
    sqlite_store.put_document("t", "other", *make_doc("a.txt", ["three"]))
    sqlite_store.delete_collection("t", "c")
    assert counts(db_path) == {"collections": 1, "documents": 1, "chunks": 1, "fts_2": 1}
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_database_path_parses_sqlite_urls() -> None:
    """Three slashes mean a relative path, four an absolute one."""
    assert database_path("sqlite:///data/x.db") == "data/x.db"
    assert database_path("sqlite:////var/lib/x.db") == "/var/lib/x.db"
    assert database_path("sqlite://:memory:") == ":memory:"
    assert database_path("sqlite:///:memory:") == ":memory:"
    for bad in ("sqlite://", "sqlite:///", "sqlite://host/x.db", "x.db"):
        with pytest.raises(ConfigError):
            database_path(bad)


def test_memory_store_works_across_threads(make_doc: Factory, vector_for: Factory) -> None:
    """``:memory:`` is one private database shared by the store's threads."""
    store = SqliteStore.from_url("sqlite://:memory:")
    try:
        store.ensure_collection("t", "c")
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                store.put_document("t", "c", *make_doc(f"{i}.txt", [f"text {i}"]))
                store.dense_search("t", "c", vector_for("q"), limit=3)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.get_collection("t", "c").document_count == 4
    finally:
        store.close()
    other = SqliteStore(":memory:")
    try:
        assert other.list_collections("t") == []
    finally:
        other.close()


def test_closed_store_refuses_calls(sqlite_store: SqliteStore) -> None:
    """A call after close() says the store is closed."""
    sqlite_store.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        sqlite_store.get_collection("t", "c")


def brute_force(store: SqliteStore, query: Matrix, limit: int) -> list[str]:
    """Top chunk ids by scanning every stored vector."""
    with raw(Path(store.path)) as conn:
        rows = conn.execute("SELECT id, vector FROM chunks").fetchall()
    scores = {cid: float(np.frombuffer(blob, np.float32) @ query) for cid, blob in rows}
    return sorted(scores, key=lambda c: -scores[c])[:limit]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts whole-matrix loads (one entry per load)."""
    seen: list[int] = []
    original = sqlite_module.load_matrix

    def counting(conn: sqlite3.Connection, collection_id: int, version: int, dim: int) -> Any:
        seen.append(version)
        return original(conn, collection_id, version, dim)

    monkeypatch.setattr(sqlite_module, "load_matrix", counting)
    return seen


def random_writes(store: SqliteStore, make_doc: Factory, steps: int, seed: int) -> Iterator[int]:
    """Random adds, replacements and deletes; yields after each."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        source = f"d{rng.integers(12)}.txt"
        if rng.random() < 0.25 and store.find_document("t", "c", source):
            store.delete_document("t", "c", make_doc(source, [])[0].id)
        else:
            texts = [f"{source} {step} {j}" for j in range(rng.integers(0, 4))]
            store.put_document("t", "c", *make_doc(source, texts))
        yield step


def test_matrices_follow_writes_through_the_change_log(
    open_sqlite: Callable[[], SqliteStore], make_doc: Factory, vector_for: Factory, loads: list[int]
) -> None:
    """Writer and a second instance patch their matrices from the log: same hits as a full
    scan, and each loads the whole matrix only once."""
    writer, reader = open_sqlite(), open_sqlite()
    writer.ensure_collection("t", "c")
    query = vector_for("query")
    writer.put_document("t", "c", *make_doc("seed.txt", [f"seed {i}" for i in range(50)]))
    for step in random_writes(writer, make_doc, 60, seed=7):
        if step % 5 == 0:
            patched = [h.chunk.id for h in writer.dense_search("t", "c", query, limit=20)]
            other = [h.chunk.id for h in reader.dense_search("t", "c", query, limit=20)]
            assert patched == other == brute_force(writer, query, 20)
    assert len(loads) == 2


def test_a_pruned_change_log_means_a_reload(
    open_sqlite: Callable[[], SqliteStore],
    make_doc: Factory,
    vector_for: Factory,
    loads: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader further behind than the kept log reloads, and still sees the right rows."""
    monkeypatch.setattr(sqlite_module, "CHANGES_KEPT", 3)
    writer, reader = open_sqlite(), open_sqlite()
    writer.ensure_collection("t", "c")
    query = vector_for("query")
    writer.put_document("t", "c", *make_doc("seed.txt", ["seed"]))
    reader.dense_search("t", "c", query, limit=1)
    for _ in random_writes(writer, make_doc, 10, seed=3):
        pass
    assert [h.chunk.id for h in reader.dense_search("t", "c", query, limit=20)] == brute_force(
        writer, query, 20
    )
    assert len(loads) == 2
    with raw(Path(writer.path)) as conn:
        assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == 3
