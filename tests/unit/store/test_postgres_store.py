"""What the PostgreSQL store adds to the Store contract: the HNSW path of dense search, the
``tsvector`` keyword engine agreeing with the in-memory one, lexemes kept exactly, migrations
under concurrent starts, and failures mapped to the error tree. A real server (``tests/pg.py``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from pg import DatabaseFactory, EmbeddedPostgres, free_port, with_database
from ragserve.errors import BackendTimeout, BackendUnavailable, ConfigError, InputError
from ragserve.retrieve.filters import parse_filter
from ragserve.store.postgres import PostgresStore
from ragserve.store.postgres_rows import lexemes
from ragserve.store.postgres_schema import MIGRATIONS
from ragserve.store.postgres_search import hnsw_statement
from ragserve.types import Chunk, DocumentRecord, Matrix

T = "tenant"
Doc = tuple[DocumentRecord, list[Chunk], Matrix]


@pytest.fixture
def open_postgres(postgres_url: str) -> Iterator[Callable[..., PostgresStore]]:
    """Opens PostgresStore instances on the test's database; all closed after the test."""
    opened: list[PostgresStore] = []

    def open_one(options: str = "") -> PostgresStore:
        store = PostgresStore.from_url(postgres_url + options, busy_timeout_ms=10_000)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def random_doc(source: str, count: int, dim: int, rng: np.random.Generator) -> Doc:
    """A document of ``count`` chunks with random unit vectors."""
    record = DocumentRecord(source, source, None, "text/plain", source, "p", {"source": source})
    chunks = [
        Chunk(f"{source}-{i}", source, i, f"{source} chunk {i}", 1, 0, 1, 1) for i in range(count)
    ]
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    return record, chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_top(vectors: Matrix, ids: list[str], query: Matrix, k: int) -> list[str]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return [ids[i] for i in order]


def test_hnsw_statement_uses_the_partial_index_of_its_width(
    open_postgres: Callable[..., PostgresStore], postgres_url: str
) -> None:
    """The HNSW query spells the index's expression and predicate, so the planner can use it."""
    store = open_postgres("?exact_max=0")
    store.ensure_collection(T, "c")
    rng = np.random.default_rng(1)
    for i in range(4):
        store.put_document(T, "c", *random_doc(f"d{i}", 300, 16, rng))
    with psycopg.connect(postgres_url) as conn:
        conn.execute("ANALYZE chunks")
        explain = sql.SQL("EXPLAIN ") + hnsw_statement(16, sql.SQL("true"))
        query = "[" + ",".join(["0.25"] * 16) + "]"
        plan = "\n".join(row[0] for row in conn.execute(explain, (query, 1, 10)))
    assert "chunks_hnsw_16" in plan


def test_hnsw_search_matches_exact_search(open_postgres: Callable[..., PostgresStore]) -> None:
    """Through the index, hits are the exact nearest (recall ≥ 0.9), ordered by exact score."""
    store = open_postgres("?exact_max=0")
    store.ensure_collection(T, "c")
    rng = np.random.default_rng(2)
    docs = [random_doc(f"d{i}", 250, 16, rng) for i in range(8)]
    for doc in docs:
        store.put_document(T, "c", *doc)
    vectors = np.concatenate([d[2] for d in docs])
    ids = [c.id for d in docs for c in d[1]]
    found = 0
    for q in range(20):
        query = vectors[q * 97]
        hits = store.dense_search(T, "c", query, limit=10)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert hits[0].chunk.id == ids[q * 97]
        by_id = dict(zip(ids, (vectors @ query).tolist(), strict=True))
        assert all(abs(by_id[h.chunk.id] - h.score) < 1e-5 for h in hits)
        found += len({h.chunk.id for h in hits} & set(exact_top(vectors, ids, query, 10)))
    assert found / 200 >= 0.9


def test_collections_sharing_the_index_and_filters_still_fill_the_limit(
    open_postgres: Callable[..., PostgresStore],
) -> None:
    """A small collection beside a large one of the same width, and a filter admitting one
    document of many, get every admitted chunk (iterative index scan), best first."""
    store = open_postgres("?exact_max=0")
    store.ensure_collection(T, "big")
    store.ensure_collection(T, "small")
    rng = np.random.default_rng(3)
    big = [random_doc(f"b{i}", 200, 16, rng) for i in range(10)]
    for doc in big:
        store.put_document(T, "big", *doc)
    small = random_doc("s", 30, 16, rng)
    store.put_document(T, "small", *small)
    query = rng.standard_normal(16).astype(np.float32)
    query /= np.linalg.norm(query)
    hits = store.dense_search(T, "small", query, limit=50)
    assert [h.chunk.id for h in hits] == exact_top(small[2], [c.id for c in small[1]], query, 50)
    only = parse_filter({"source": "b7"})
    hits = store.dense_search(T, "big", query, limit=25, filters=only)
    expected = exact_top(big[7][2], [c.id for c in big[7][1]], query, 25)
    assert [h.chunk.id for h in hits] == expected


def test_each_width_gets_one_index_and_wide_vectors_are_searched_exactly(
    open_postgres: Callable[..., PostgresStore], postgres_url: str
) -> None:
    """Collections of 16, 32 and 2,048 dimensions coexist; only indexable widths get an index."""
    store = open_postgres("?exact_max=0")
    rng = np.random.default_rng(4)
    for name, dim in [("a", 16), ("b", 32), ("c", 2048), ("d", 16)]:
        store.ensure_collection(T, name)
        doc = random_doc(f"{name}.txt", 3, dim, rng)
        store.put_document(T, name, *doc)
        hits = store.dense_search(T, name, doc[2][1], limit=3)
        assert hits[0].chunk.id == doc[1][1].id
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    with psycopg.connect(postgres_url) as conn:
        names = [n for (n,) in conn.execute("SELECT indexname FROM pg_indexes ORDER BY 1")]
    assert [n for n in names if n.startswith("chunks_hnsw")] == ["chunks_hnsw_16", "chunks_hnsw_32"]


def test_an_index_left_invalid_by_an_interrupted_build_is_built_again(
    open_postgres: Callable[..., PostgresStore], postgres_url: str
) -> None:
    """A new process finding the width's HNSW index invalid drops and rebuilds it."""
    rng = np.random.default_rng(7)
    first = open_postgres("?exact_max=0")
    first.ensure_collection(T, "c")
    first.put_document(T, "c", *random_doc("a.txt", 5, 16, rng))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'chunks_hnsw_16'::regclass"
        )
    second = open_postgres("?exact_max=0")
    doc = random_doc("b.txt", 5, 16, rng)
    assert second.put_document(T, "c", *doc) == "added"
    with psycopg.connect(postgres_url) as conn:
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'chunks_hnsw_16'::regclass"
        ).fetchone()
    assert valid == (True,)
    assert second.dense_search(T, "c", doc[2][0], limit=1)[0].chunk.id == doc[1][0].id


def test_stores_meeting_a_new_width_at_once_build_one_index(
    open_postgres: Callable[..., PostgresStore], postgres_url: str
) -> None:
    """Four stores putting the first 24-dimensional documents at the same moment all succeed
    (index builders wait for each other without deadlocking) and one index serves them."""
    stores = [open_postgres() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def put_first(i: int) -> None:
        try:
            stores[i].ensure_collection(T, f"c{i}")
            doc = random_doc(f"d{i}", 3, 24, np.random.default_rng(i))
            barrier.wait()
            stores[i].put_document(T, f"c{i}", *doc)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put_first, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid WHERE c.relname LIKE 'chunks_hnsw%'"
        ).fetchall()
    assert rows == [("chunks_hnsw_24", True)]
    assert [s.get_collection(T, f"c{i}").chunk_count for i, s in enumerate(stores)] == [3] * 4


BM25_TEXTS = [
    "the cell cell cell divides",
    "a membrane surrounds every cell",
    "mitochondria mitochondria produce energy for the cell",
    "rivers flow to the sea",
    "the sea the sea the sea",
    "energy flows in rivers and cells",
    "nothing relevant here at all",
    "x_y café it's back\\slash",
]


def test_tsvector_engine_scores_like_the_memory_engine(
    open_postgres: Callable[..., PostgresStore],
) -> None:
    """Both keyword engines over one database rank and score every query alike."""
    memory, tsvector = open_postgres(), open_postgres("?keyword_engine=tsvector")
    memory.ensure_collection(T, "c")
    for i, text in enumerate(BM25_TEXTS):
        record = DocumentRecord(f"d{i}", f"d{i}.txt", None, "text/plain", text, "p", {"n": i})
        chunk = Chunk(f"d{i}-0", f"d{i}", 0, text, 1, 0, len(text), 1)
        memory.put_document(T, "c", record, [chunk], np.eye(1, 8, i, dtype=np.float32))
    queries: list[tuple[str, Any]] = [
        ("cells and energy", None),
        ("cell cell membrane", None),
        ("the sea rivers", None),
        ("mitochondria energy", parse_filter({"n": {"$gte": 2}})),
        ("x_y CAFÉ it's back\\slash", None),
    ]
    for query, filters in queries:
        expected = memory.keyword_search(T, "c", query, limit=10, filters=filters)
        got = tsvector.keyword_search(T, "c", query, limit=10, filters=filters)
        assert [h.chunk.id for h in got] == [h.chunk.id for h in expected]
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], rel=1e-6)
        assert expected


def test_lexemes_keep_each_analysed_term_whole(postgres_url: str) -> None:
    """Quotes, backslashes, underscores and accents survive; counts become positions."""
    terms = ["x_y", "café", "it's", "back\\slash", "a", "a", "a"]
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT lexeme, cardinality(positions) FROM unnest(%s::tsvector) ORDER BY 1",
            (lexemes(terms),),
        ).fetchall()
    assert dict(rows) == {"x_y": 1, "café": 1, "it's": 1, "back\\slash": 1, "a": 3}


def test_concurrent_starters_apply_each_migration_once(
    open_postgres: Callable[..., PostgresStore], postgres_url: str
) -> None:
    """Stores opened at once on a new database all start; every migration is recorded once."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            open_postgres()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with psycopg.connect(postgres_url) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM migrations ORDER BY seq")]
    assert names == [name for name, _ in MIGRATIONS]


def test_a_writer_held_up_past_the_busy_timeout_gets_backend_timeout(
    postgres_url: str,
) -> None:
    """While another transaction holds the collection's row, a write gives up after
    ``busy_timeout_ms`` with BackendTimeout and writes nothing."""
    store = PostgresStore.from_url(postgres_url, busy_timeout_ms=300)
    try:
        store.ensure_collection(T, "c")
        doc = random_doc("a.txt", 2, 8, np.random.default_rng(5))
        with psycopg.connect(postgres_url) as blocker:
            blocker.execute("SELECT * FROM collections FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                store.put_document(T, "c", *doc)
            assert time.monotonic() - started < 5
        assert store.get_collection(T, "c").document_count == 0
        assert store.put_document(T, "c", *doc) == "added"
    finally:
        store.close()


def test_unreachable_server_is_unavailable_within_seconds() -> None:
    """Nothing listening: opening the store fails fast with BackendUnavailable."""
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        PostgresStore.from_url(f"postgresql://nobody@127.0.0.1:{free_port()}/db")
    assert time.monotonic() - started < 10


def test_a_restarted_server_is_unavailable_then_served_again() -> None:
    """While the server is down calls fail fast with BackendUnavailable; once it is back the
    same store serves again, without being reopened."""
    with EmbeddedPostgres() as server:
        databases = DatabaseFactory(server.url)
        store = PostgresStore.from_url(databases.create())
        try:
            store.ensure_collection(T, "c")
            server.halt()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                store.ping()
            assert time.monotonic() - started < 5
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                store.get_collection(T, "c")
            assert time.monotonic() - started < 1
            server.resume()
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert store.get_collection(T, "c").document_count == 0
                    break
                except BackendUnavailable:
                    assert time.monotonic() < deadline, "the store did not come back"
                    time.sleep(0.5)
            store.ping()
        finally:
            store.close()


def test_text_postgresql_cannot_store_is_an_input_error(
    open_postgres: Callable[..., PostgresStore],
) -> None:
    """A NUL character (which PostgreSQL text and JSONB refuse) is an InputError, no trace."""
    store = open_postgres()
    store.ensure_collection(T, "c")
    record, chunks, vectors = random_doc("a.txt", 1, 8, np.random.default_rng(6))
    for bad in (
        (DocumentRecord("a.txt", "a.txt", None, "text/plain", "h", "p", {"k": "a\x00b"}), chunks),
        (record, [Chunk(chunks[0].id, "a.txt", 0, "nul \x00 here", 1, 0, 1, 1)]),
    ):
        with pytest.raises(InputError):
            store.put_document(T, "c", bad[0], bad[1], vectors)
    assert store.list_documents(T, "c") == []


def test_a_database_without_pgvector_it_may_not_install_is_a_config_error(
    postgres_databases: DatabaseFactory,
) -> None:
    """A user who may not CREATE EXTENSION vector gets a ConfigError saying what to do."""
    name = f"plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_databases.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
    url = with_database(postgres_databases.admin_url, name).replace("postgres@", f"{name}@")
    try:
        with pytest.raises(ConfigError, match="CREATE EXTENSION vector"):
            PostgresStore.from_url(url)
    finally:
        postgres_databases.drop(url)
        with psycopg.connect(postgres_databases.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.mark.parametrize("options", ["?keyword_engine=fts5", "?pool_size=0", "?exact_max=x"])
def test_bad_store_options_are_config_errors(postgres_url: str, options: str) -> None:
    """Unknown engines and invalid numbers in the URL are refused with ConfigError."""
    with pytest.raises(ConfigError):
        PostgresStore.from_url(postgres_url + options)
