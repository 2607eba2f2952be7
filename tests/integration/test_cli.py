"""The ``ragserve`` command line, run as a real process: the user's view."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragserve.eval.beir import load_beir


def run(data_dir: Path, model_cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(model_cache),
    }
    return subprocess.run(
        [sys.executable, "-m", "ragserve.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "ragserve.db")


def test_ingest_then_ask_prints_the_answer_and_its_sources(
    tmp_path: Path, model_cache: Path, corpus: Path
) -> None:
    """`ingest` summarises what it did; `ask` prints the answer, then file and page."""
    data = tmp_path / "data"
    ingest = run(data, model_cache, "ingest", str(corpus), "--collection", "kb")
    assert ingest.returncode == 0, ingest.stderr
    assert "added 5, unchanged 0, replaced 0, failed 0" in ingest.stdout
    again = run(data, model_cache, "ingest", str(corpus), "--collection", "kb")
    assert "added 0, unchanged 5, replaced 0, failed 0" in again.stdout
    ask = run(data, model_cache, "ask", "When does the support desk open?", "-c", "kb")
    assert ask.returncode == 0, ask.stderr
    assert "8 am" in ask.stdout
    assert "page.html — page 1" in ask.stdout


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corrupt.pdf", b"%PDF-1.4\n1 0 obj <<>> garbage", "PDF"),
        ("binary.txt", bytes(range(256)) * 8, "binary"),
        ("empty.txt", b"", "empty"),
    ],
)
def test_bad_files_get_a_clear_message_and_a_non_zero_exit(
    tmp_path: Path, model_cache: Path, name: str, content: bytes, message: str
) -> None:
    """Unreadable input is reported in one line on stderr, exits 1, and stores nothing."""
    bad = tmp_path / name
    bad.write_bytes(content)
    data = tmp_path / "data"
    result = run(data, model_cache, "ingest", str(bad), "-c", "kb")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert message.lower() in result.stderr.lower()
    with database(data) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)


def test_an_encrypted_pdf_needs_its_password(
    tmp_path: Path, model_cache: Path, shared_data: Path
) -> None:
    """Without --password the encrypted PDF fails clearly; with it, it is ingested."""
    pdf = shared_data / "pdfs" / "libreoffice-writer-password.pdf"
    data = tmp_path / "data"
    refused = run(data, model_cache, "ingest", str(pdf), "-c", "kb")
    assert refused.returncode == 1
    assert "password" in refused.stderr.lower()
    assert "Traceback" not in refused.stderr
    accepted = run(data, model_cache, "ingest", str(pdf), "-c", "kb", "--password", "openpassword")
    assert accepted.returncode == 0, accepted.stderr
    assert "added 1" in accepted.stdout


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_refused(tmp_path: Path, model_cache: Path, question: str) -> None:
    """An empty question exits 2 with a message, before touching any collection."""
    result = run(tmp_path / "data", model_cache, "ask", question, "-c", "kb")
    assert result.returncode == 2
    assert "question is empty" in result.stderr


def test_asking_an_unknown_collection_says_so(tmp_path: Path, model_cache: Path) -> None:
    """A missing collection is a one-line error naming it."""
    result = run(tmp_path / "data", model_cache, "ask", "anything?", "-c", "nope")
    assert result.returncode == 2
    assert "nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_path_is_refused(tmp_path: Path, model_cache: Path) -> None:
    """Ingesting a path that does not exist exits 2 and names it."""
    result = run(tmp_path / "data", model_cache, "ingest", str(tmp_path / "ghost.pdf"))
    assert result.returncode == 2
    assert "ghost.pdf" in result.stderr


def test_sigkill_mid_ingest_leaves_whole_documents_and_a_rerun_completes(
    tmp_path: Path, model_cache: Path, shared_data: Path
) -> None:
    """Killed mid-ingest, the database is intact, each document is whole or absent, and a
    re-run finishes the job."""
    folder = tmp_path / "abstracts"
    folder.mkdir()
    corpus = load_beir(shared_data / "scifact", "test").corpus
    for doc_id, doc in list(corpus.items())[:400]:
        (folder / f"{doc_id}.txt").write_text(doc.title + "\n\n" + doc.text)
    data = tmp_path / "data"
    env = {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data),
        "RAGSERVE_EMBED__CACHE_DIR": str(model_cache),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragserve.cli", "ingest", str(folder), "-c", "kb"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    stored = 0
    while stored < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (data / "ragserve.db").exists():
            try:
                with database(data) as conn:
                    stored = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            except sqlite3.OperationalError:
                continue
    assert proc.poll() is None, "ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    with database(data) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute(
            "SELECT d.chunk_count, (SELECT count(*) FROM chunks c WHERE c.document_pk = d.pk) "
            "FROM documents d"
        ).fetchall()
        assert 0 < len(rows) < 400
        assert all(declared == actual > 0 for declared, actual in rows)
        (collection_id,) = conn.execute("SELECT id FROM collections").fetchone()
        fts_rows = conn.execute(f"SELECT count(*) FROM fts_{collection_id}").fetchone()[0]
        assert fts_rows == sum(actual for _, actual in rows)

    rerun = run(data, model_cache, "ingest", str(folder), "-c", "kb")
    assert rerun.returncode == 0, rerun.stderr
    assert f"unchanged {len(rows)}," in rerun.stdout
    assert f"added {400 - len(rows)}," in rerun.stdout
    with database(data) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (400,)


def test_search_json_lists_hits_with_offsets(
    tmp_path: Path, model_cache: Path, corpus: Path
) -> None:
    """`search --json` prints hits with source, page and character offsets."""
    data = tmp_path / "data"
    run(data, model_cache, "ingest", str(corpus), "-c", "kb")
    result = run(data, model_cache, "search", "lunch at the cafeteria", "-c", "kb", "--json")
    hits = json.loads(result.stdout)
    assert Path(hits[0]["source"]).name == "plain.txt"
    assert hits[0]["page"] == 1
    assert hits[0]["end"] > hits[0]["start"]
