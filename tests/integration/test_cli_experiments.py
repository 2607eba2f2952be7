"""``ragserve config`` and ``ragserve experiment``, run as real processes on a temp data dir."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_cli import run

from ragserve.config import EmbedSettings, Settings
from ragserve.experiments.routing import Subject
from ragserve.service import build_service

QUESTIONS = (
    "What does ALDH1 expression mean for breast cancer?",
    "How does bone mineral density change?",
    "Which cells repair DNA damage?",
    "What is the role of microRNA?",
    "How does vitamin D affect mortality?",
    "What happens in the immune response?",
)


@pytest.fixture
def documents(tmp_path: Path, shared_data: Path) -> Path:
    """Eight SciFact abstracts as text files."""
    folder = tmp_path / "docs"
    folder.mkdir()
    with (shared_data / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
        for _, line in zip(range(8), lines, strict=False):
            doc = json.loads(line)
            (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}\n")
    return folder


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def refused(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert (code, 1) == (result.returncode, len(result.stderr.strip().splitlines())), result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def collection_counts(data: Path, model_cache: Path, name: str) -> tuple[int, int]:
    """(documents, chunks) from the `ragserve collections` table."""
    table = ok(run(data, model_cache, "collections")).stdout
    (row,) = [line for line in table.splitlines() if f"│ {name} " in line]
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    return int(cells[1]), int(cells[2])


def test_config_put_versions_by_content(tmp_path: Path, model_cache: Path) -> None:
    """The same content again keeps the version, a change makes the next; show, list and
    versions read them back; a TOML file is laid under --set."""
    data = tmp_path / "data"
    first = ok(run(data, model_cache, "config", "put", "fast", "--set", "retrieve.mode=bm25"))
    assert first.stdout.startswith("fast@1  config_hash ")
    again = ok(run(data, model_cache, "config", "put", "fast", "--set", "retrieve.mode=bm25"))
    assert (first.stdout, "unchanged") == (again.stdout, again.stderr.split(":")[0])

    toml = tmp_path / "fast.toml"
    toml.write_text('[retrieve]\nmode = "dense"\ntop_k = 3\n\n[rerank]\nname = "mmr"\n')
    args = ("--file", str(toml), "--set", "retrieve.mode=bm25", "--description", "top 3")
    second = ok(run(data, model_cache, "config", "put", "fast", *args, "--json"))
    stored = json.loads(second.stdout)
    assert (stored["ref"], stored["description"]) == ("fast@2", "top 3")
    assert {k: stored["config"]["retrieve"][k] for k in ("mode", "top_k")} == {
        "mode": "bm25",
        "top_k": 3,
    }
    assert stored["config"]["rerank"]["name"] == "mmr"
    assert first.stdout.split()[4] == stored["index_hash"]  # retrieval only: same index

    shown = json.loads(ok(run(data, model_cache, "config", "show", "fast@1")).stdout)
    assert (shown["version"], shown["config"]["retrieve"]["top_k"]) == (1, 5)
    latest = json.loads(ok(run(data, model_cache, "config", "show", "fast")).stdout)
    assert stored == latest
    listed = json.loads(ok(run(data, model_cache, "config", "list", "--json")).stdout)
    assert [c["ref"] for c in listed] == ["fast@2"]
    versions = json.loads(ok(run(data, model_cache, "config", "versions", "fast", "--json")).stdout)
    assert [c["ref"] for c in versions] == ["fast@1", "fast@2"]
    refused(run(data, model_cache, "config", "show", "fast@9"), 2, "'fast' version 9 not found")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "ranking.mode=bm25"), "unknown configuration section 'ranking'"),
        (("--set", "retrieve.mode=sideways"), "retrieve.mode"),
        (("--set", "chunk.sise=128"), "unknown field chunk.sise"),
        (("--set", "chunk.size=8"), "chunk.size"),
        (("--set", "retrieve.top_k"), "--set takes section.field=value"),
        (("--base", "missing"), "pipeline configuration 'missing' not found"),
    ],
)
def test_an_invalid_configuration_exits_2_naming_the_field(
    tmp_path: Path, model_cache: Path, args: tuple[str, ...], message: str
) -> None:
    """A configuration that cannot be stored is one line on stderr naming what is wrong."""
    refused(run(tmp_path / "data", model_cache, "config", "put", "bad", *args), 2, message)


def test_an_experiment_from_creation_to_promotion(
    tmp_path: Path, model_cache: Path, documents: Path
) -> None:
    """Refused shares and a second active experiment get a clear message; answers asked with
    subjects are analysed per variant with a report; promoting makes the winner the
    collection's configuration."""
    data = tmp_path / "data"
    ok(run(data, model_cache, "ingest", str(documents), "-c", "kb"))
    ok(run(data, model_cache, "config", "put", "lexical", "--set", "retrieve.mode=bm25"))
    ok(run(data, model_cache, "config", "put", "blended", "--set", "retrieve.mode=hybrid"))

    create = ("experiment", "create", "-c", "kb")
    over = ("-v", "a=blended:0.6", "-v", "b=lexical:0.6")
    refused(run(data, model_cache, *create, "x", *over), 2, "shares must sum to 1, got 1.2")
    variants = ("-v", "control=blended:0.5", "-v", "bm25=lexical@1:0.5")
    made = json.loads(ok(run(data, model_cache, *create, "ab", *variants, "--json")).stdout)
    assert (
        made["state"],
        [v["config"] for v in made["variants"]],
    ) == ("draft", ["blended@1", "lexical@1"])
    ok(run(data, model_cache, *create, "other", *variants))
    assert "running" in ok(run(data, model_cache, "experiment", "start", "ab")).stdout
    refused(
        run(data, model_cache, "experiment", "start", "other"),
        1,
        "collection 'kb' already has an active experiment ('ab', running)",
    )

    settings = Settings(data_dir=data, embed=EmbedSettings(cache_dir=model_cache))
    service = build_service(settings)
    try:
        for n in range(24):
            service.query("kb", QUESTIONS[n % len(QUESTIONS)], subject=Subject(f"k{n}"))
    finally:
        service.close()

    report = tmp_path / "ab.html"
    analyze = ("experiment", "analyze", "ab", "--json", "--report", str(report))
    analysis = json.loads(ok(run(data, model_cache, *analyze)).stdout)
    counts = {v["name"]: v["count"] for v in analysis["variants"]}
    assert (sum(counts.values()), analysis["total"]) == (24, 24)
    assert all(counts.values()), counts  # 24 subjects at 50/50: both variants answered
    assert '<img src="data:image/png;base64,' in report.read_text(encoding="utf-8")
    table = ok(run(data, model_cache, "experiment", "analyze", "ab")).stdout
    assert "bm25 against the control, control" in table
    assert "sources_found" in table

    status = json.loads(ok(run(data, model_cache, "experiment", "status", "ab", "--json")).stdout)
    assert status["counts"] == counts
    assert status["summaries"][0].startswith("variant bm25: ")

    for action, state in (("pause", "paused"), ("resume", "running")):
        changed = json.loads(
            ok(run(data, model_cache, "experiment", action, "ab", "--json")).stdout
        )
        assert changed["state"] == state
    refused(run(data, model_cache, "experiment", "resume", "ab"), 1, "only from paused")
    refused(run(data, model_cache, "experiment", "promote", "ab", "nope"), 2, "no variant 'nope'")
    ok(run(data, model_cache, "experiment", "promote", "ab", "bm25"))
    current = json.loads(ok(run(data, model_cache, "config", "current", "kb", "--json")).stdout)
    assert (current["config"], current["resolved"]["retrieve"]["mode"]) == ("lexical@1", "bm25")
    listed = json.loads(ok(run(data, model_cache, "experiment", "list", "--json")).stdout)
    states = {(e["name"], e["state"], e["winner"]) for e in listed}
    assert states == {("ab", "promoted", "bm25"), ("other", "draft", None)}


def test_config_use_reindexes_a_collection_for_other_chunking(
    tmp_path: Path, model_cache: Path, documents: Path
) -> None:
    """Without --wait the re-index is queued; --wait runs that job here to its end: the
    collection then uses the configuration, keeps every document, and is chunked anew."""
    data = tmp_path / "data"
    ok(run(data, model_cache, "ingest", str(documents), "-c", "kb"))
    documents_before, chunks_before = collection_counts(data, model_cache, "kb")
    small = ("--set", "chunk.size=64", "--set", "chunk.overlap=8")
    ok(run(data, model_cache, "config", "put", "small", *small))

    queued = ok(run(data, model_cache, "config", "use", "kb", "small"))
    job_id = queued.stdout.splitlines()[0]
    assert "queued" in queued.stderr
    pending = json.loads(ok(run(data, model_cache, "config", "current", "kb", "--json")).stdout)
    assert (None, job_id) == (pending["config"], pending["reindex_job"])

    waited = ok(run(data, model_cache, "config", "use", "kb", "small", "--wait"))
    assert job_id == waited.stdout.splitlines()[0]
    assert "kb: small@1 " in waited.stdout
    job = json.loads(ok(run(data, model_cache, "jobs", "show", job_id)).stdout)
    assert (job["state"], job["result"]["documents"]) == ("succeeded", 8)
    current = json.loads(ok(run(data, model_cache, "config", "current", "kb", "--json")).stdout)
    assert (
        current["config"],
        current["resolved"]["chunk"]["size"],
        current["reindex_job"],
    ) == ("small@1", 64, None)
    documents_after, chunks_after = collection_counts(data, model_cache, "kb")
    assert documents_before == documents_after
    assert chunks_after > chunks_before

    back = ok(run(data, model_cache, "config", "use", "kb", "--default", "--wait"))
    assert "kb: the server's own configuration" in back.stdout
    assert (documents_before, chunks_before) == collection_counts(data, model_cache, "kb")
    refused(run(data, model_cache, "config", "use", "kb"), 2, "or --default")
