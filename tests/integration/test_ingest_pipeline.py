"""Ingestion through the real service: idempotence, edits, deletes, failures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from ragserve.config import Settings
from ragserve.service import RagService, build_service
from ragserve.types import Matrix, TextDocument


def db_counts(settings: Settings) -> dict[str, int]:
    path = settings.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("documents", "chunks", "collections")
        }


def test_ingesting_the_same_folder_twice_changes_nothing(
    service: RagService, settings: Settings, corpus: Path
) -> None:
    """A second ingest of an unchanged folder reports every file unchanged and writes nothing."""
    first = service.ingest_files("docs", [corpus])
    before = db_counts(settings)
    version = service.get_collection("docs").version
    second = service.ingest_files("docs", [corpus])
    assert sorted(o.status for o in first) == ["added"] * 5
    assert [o.status for o in second] == ["unchanged"] * 5
    assert db_counts(settings) == before
    assert service.get_collection("docs").version == version


def test_an_edited_file_replaces_its_chunks_and_reuses_unchanged_vectors(
    service: RagService, tmp_path: Path
) -> None:
    """Editing one paragraph re-embeds only the chunks whose text changed."""
    paragraphs = [
        f"Paragraph {i} talks about topic number {i} in some detail. " * 20 for i in range(6)
    ]
    doc = tmp_path / "long.md"
    doc.write_text("\n\n".join(paragraphs))
    service.ingest_files("c", [doc])
    embedded: list[int] = []
    real = service.embedder.embed_documents

    def counting(texts: list[str]) -> Matrix:
        embedded.append(len(texts))
        return real(texts)

    service.embedder.embed_documents = counting  # type: ignore[method-assign]
    paragraphs[-1] = "The final paragraph now explains the new refund policy instead."
    doc.write_text("\n\n".join(paragraphs))
    [outcome] = service.ingest_files("c", [doc])
    assert outcome.status == "replaced"
    assert 0 < sum(embedded) < outcome.chunks
    hits = service.search("c", "refund policy", mode="bm25", top_k=1)
    assert "refund policy" in hits[0].chunk.text


def test_deleting_a_document_removes_every_trace(service: RagService, corpus: Path) -> None:
    """After delete, neither keyword nor dense search can find the document's text."""
    outcomes = service.ingest_files("docs", [corpus])
    target = next(o for o in outcomes if o.source.endswith("plain.txt"))
    assert target.document_id is not None
    service.delete_document("docs", target.document_id)
    assert all(
        h.chunk.document_id != target.document_id
        for h in service.search("docs", "cafeteria lunch noon", mode="bm25", top_k=10)
    )
    assert all(
        h.chunk.document_id != target.document_id
        for h in service.search("docs", "cafeteria lunch noon", mode="dense", top_k=10)
    )
    assert len(service.list_documents("docs")) == 4


def test_a_bad_file_fails_alone_and_the_batch_goes_on(service: RagService, tmp_path: Path) -> None:
    """A corrupt PDF is reported as failed with a reason; the good file is still ingested."""
    (tmp_path / "good.txt").write_text("Parking is free after 6 pm.")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    outcomes = {Path(o.source).name: o for o in service.ingest_files("c", [tmp_path])}
    assert outcomes["good.txt"].status == "added"
    assert outcomes["broken.pdf"].status == "failed"
    assert outcomes["broken.pdf"].error
    assert [d.source for d in service.list_documents("c")] == [str(tmp_path / "good.txt")]


def test_answers_cite_the_source_that_holds_the_fact(service: RagService, corpus: Path) -> None:
    """The default pipeline answers from the right file and cites it."""
    service.ingest_files("docs", [corpus])
    answer = service.query("docs", "How long is the retention period for audit logs?")
    assert not answer.abstained
    assert "90 days" in answer.text
    assert [Path(s.hit.document_source).name for s in answer.cited] == ["notes.md"]


def test_pdf_citations_carry_the_page_number(service: RagService, corpus: Path) -> None:
    """A fact from page 1 of the Federal Register PDF is cited with page 1 and its offsets."""
    service.ingest_files("docs", [corpus])
    hits = service.search("docs", "comments must be received on or before", top_k=3)
    top = hits[0]
    assert Path(top.document_source).name == "federal-register-2020-17221.pdf"
    assert top.chunk.page >= 1
    assert top.chunk.end > top.chunk.start


def test_tenants_never_see_each_others_documents(settings: Settings, corpus: Path) -> None:
    """The same collection name under two tenants holds separate documents."""
    service = build_service(settings)
    try:
        service.ingest_files("shared-name", [corpus / "notes.md"], tenant="acme")
        service.ingest_files("shared-name", [corpus / "plain.txt"], tenant="globex")
        acme = service.search("shared-name", "cafeteria lunch", tenant="acme", top_k=5)
        assert all(Path(h.document_source).name == "notes.md" for h in acme)
        vectors: Matrix = service.embedder.embed_query("lunch")
        assert np.isclose(np.linalg.norm(vectors), 1.0, atol=1e-5)
    finally:
        service.close()


def test_warm_loads_every_non_empty_collection(settings: Settings) -> None:
    """After a restart, warm() builds the search structures of each collection with chunks."""
    first = build_service(settings)
    try:
        first.ingest_texts("a", [TextDocument("x", "Tides follow the moon.")], tenant="t1")
        first.ingest_texts("b", [TextDocument("y", "Bees make honey.")], tenant="t2")
        first.create_collection("empty", tenant="t1")
    finally:
        first.close()
    restarted = build_service(settings)
    try:
        warmed = restarted.warm()
        assert sorted((tenant, name) for tenant, name, _ in warmed) == [("t1", "a"), ("t2", "b")]
        hits = restarted.search("b", "honey", tenant="t2")
        assert [h.document_source for h in hits] == ["y"]
    finally:
        restarted.close()
