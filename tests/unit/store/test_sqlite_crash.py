"""A writer killed with SIGKILL mid-ingest leaves every document wholly present or absent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from ragserve.store.sqlite import SqliteStore

INGEST_FOREVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from ragserve.store.sqlite import SqliteStore
    from ragserve.types import Chunk, DocumentRecord

    store = SqliteStore(sys.argv[1])
    store.ensure_collection("t", "c")
    rng = np.random.default_rng(int(sys.argv[2]))
    for i in range(10**6):
        # every third write replaces an earlier document with a different number of chunks
        n = i // 3 if i % 3 == 2 else i
        size = int(rng.integers(20, 200))
        doc = DocumentRecord(f"doc{n}", f"src{n}", None, "text/plain", f"h{i}", "p")
        chunks = [
            Chunk(f"doc{n}-{j}", f"doc{n}", j, f"uniq{n} version{i} chunk {j}", 1, 0, 9, 5)
            for j in range(size)
        ]
        vectors = rng.standard_normal((size, 32)).astype(np.float32)
        store.put_document("t", "c", doc, chunks, vectors)
        print(i, flush=True)
    """
)


def ingest_then_kill(path: Path, seed: int, after: int, delay: float) -> int:
    """Run the writer, SIGKILL it ``delay`` s after its ``after``-th document; last seen index."""
    args = [sys.executable, "-c", INGEST_FOREVER, str(path), str(seed)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        last = -1
        for line in proc.stdout:
            last = int(line)
            if last >= after:
                break
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        return last


def check_consistent(path: Path) -> int:
    """Integrity, per-document chunk and FTS counts, collection counters; returns doc count."""
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        docs = conn.execute("SELECT pk, chunk_count FROM documents").fetchall()
        for pk, chunk_count in docs:
            keys = [
                k for (k,) in conn.execute("SELECT pk FROM chunks WHERE document_pk = ?", (pk,))
            ]
            fts = conn.execute(
                "SELECT count(*) FROM fts_1 WHERE rowid IN (SELECT value FROM json_each(?))",
                (str(keys),),
            ).fetchone()[0]
            assert (len(keys), fts) == (chunk_count, chunk_count)
        totals = conn.execute(
            "SELECT count(*), coalesce(sum(chunk_count), 0) FROM documents"
        ).fetchone()
        counters = conn.execute("SELECT document_count, chunk_count FROM collections").fetchone()
        fts_rows = conn.execute("SELECT count(*) FROM fts_1").fetchone()[0]
        chunk_rows = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        assert totals == counters
        assert fts_rows == chunk_rows == totals[1]
        return len(docs)


@pytest.mark.parametrize(("seed", "delay"), [(1, 0.0), (2, 0.013), (3, 0.05)])
def test_sigkill_mid_ingest_leaves_whole_documents(tmp_path: Path, seed: int, delay: float) -> None:
    """After a kill at an arbitrary point, the file is sound and each document complete."""
    path = tmp_path / "crash.db"
    for round_ in range(2):  # a second writer resumes on the file the first left behind
        ingest_then_kill(path, seed * 10 + round_, after=15, delay=delay)
        assert check_consistent(path) >= 10
    store = SqliteStore(path)
    try:
        info = store.get_collection("t", "c")
        for record in store.list_documents("t", "c", limit=1000):
            hits = store.keyword_search("t", "c", f"uniq{record.id[3:]}", limit=1000)
            assert len(hits) == record.chunk_count
        assert info.chunk_count == sum(
            d.chunk_count for d in store.list_documents("t", "c", limit=1000)
        )
    finally:
        store.close()
