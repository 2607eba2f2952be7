"""The upload batch's per-file states: refused, queued, running, indexed, failed."""

from __future__ import annotations

from typing import Any

from ragserve.ui.models import Job, UploadResult
from ragserve.ui.upload import FileProgress, UploadBatch, describe

JOB_ID = "a" * 32


def job(state: str, **fields: Any) -> Job:
    body = {"id": JOB_ID, "state": state, "progress": 0.0, "result": None} | fields
    return Job.of(body)


def accepted(name: str) -> FileProgress:
    item = FileProgress(name)
    item.accepted(UploadResult(name, "accepted", document_id="d", job_id=JOB_ID))
    return item


def test_an_accepted_file_is_followed_until_indexed() -> None:
    item = accepted("paper.pdf")
    seen = [(item.state, item.progress, item.message, item.pending)]
    for update in (
        job("queued"),
        job("running"),
        job("running", progress=0.75, attempts=2),
        job("succeeded", progress=1.0, result={"status": "added", "chunks": 12}),
    ):
        item.update(update)
        seen.append((item.state, item.progress, item.message, item.pending))
    assert seen == [
        ("queued", 0.0, "queued", True),
        ("queued", 0.0, "queued", True),
        ("running", 0.5, "indexing", True),
        ("running", 0.75, "indexing (attempt 2)", True),
        ("succeeded", 1.0, "indexed (12 chunks)", False),
    ]
    assert (item.finished, item.error) == (True, None)


def test_a_failed_job_keeps_its_reason_and_stops_being_polled() -> None:
    item = accepted("locked.pdf")
    item.update(job("failed", error="locked.pdf is encrypted; give its password"))
    assert (item.error, item.pending, item.finished) == (
        "locked.pdf is encrypted; give its password",
        False,
        False,
    )


def test_refusals_from_the_api_are_per_file() -> None:
    refused = FileProgress("huge.pdf")
    refused.refused("huge.pdf is 60,000,000 bytes, over the limit")
    failed = FileProgress("notes.exe")
    failed.accepted(UploadResult("notes.exe", "failed", error="unsupported file type"))
    ok = accepted("ok.md")
    batch = UploadBatch("papers", [refused, failed, ok])
    assert [f.name for f in batch.pending] == ["ok.md"]
    assert batch.summary == "3 files: 0 indexed, 2 failed, 1 in progress"
    ok.update(job("succeeded", result={"status": "unchanged", "chunks": 3}))
    assert (batch.pending, batch.summary, ok.message) == (
        [],
        "3 files: 1 indexed, 2 failed",
        "already indexed, unchanged",
    )


def test_a_lost_status_keeps_the_file_pending() -> None:
    item = accepted("a.txt")
    item.lost("The ragserve API is not reachable")
    assert (item.pending, item.message) == (
        True,
        "status unknown: The ragserve API is not reachable",
    )


def test_describe_names_each_outcome() -> None:
    assert [describe(s, 4) for s in ("added", "replaced", "unchanged", "other")] == [
        "indexed (4 chunks)",
        "updated: it replaced the earlier version (4 chunks)",
        "already indexed, unchanged",
        "other (4 chunks)",
    ]
