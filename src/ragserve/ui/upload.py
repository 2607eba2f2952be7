"""The state of an upload batch: each file refused, or accepted and followed through its job.

Plain objects kept in the session, so the rows survive reruns and are unit-testable without
Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragserve.ui.models import Job, UploadResult

RUNNING_WEIGHT = 0.5
"""Bar position of a running job whose own progress is still 0 (it has started)."""


@dataclass
class FileProgress:
    """One file: ``error`` once it failed, ``finished`` once it succeeded."""

    name: str
    job_id: str | None = None
    state: str = "uploading"
    progress: float = 0.0
    message: str = "waiting to upload"
    error: str | None = None
    finished: bool = False

    def refused(self, reason: str) -> None:
        self.state, self.error, self.message = "refused", reason, reason

    def accepted(self, result: UploadResult) -> None:
        """The API's answer for this file: queued as a job, or refused with a reason."""
        if result.status == "accepted" and result.job_id is not None:
            self.job_id, self.state, self.message = result.job_id, "queued", "queued"
        elif result.status == "failed":
            self.refused(result.error or "refused")
        else:  # indexed at once (a synchronous server answer)
            self.state, self.progress, self.finished = result.status, 1.0, True
            self.message = describe(result.status, None)

    def update(self, job: Job) -> None:
        self.state = job.state
        if job.state == "succeeded":
            self.progress, self.finished = 1.0, True
            result = job.result or {}
            self.message = describe(str(result.get("status", "added")), result.get("chunks"))
        elif job.state in ("failed", "cancelled"):
            self.error = job.error or f"the job was {job.state}"
            self.message = self.error
        elif job.state == "running":
            self.progress = max(job.progress, RUNNING_WEIGHT if job.progress == 0 else 0.0)
            self.message = "indexing"
            if job.attempts > 1:
                self.message += f" (attempt {job.attempts})"
        else:
            self.message = "queued"

    def lost(self, reason: str) -> None:
        """The job could not be read (the API went away): say so, keep polling later."""
        self.message = f"status unknown: {reason}"

    @property
    def pending(self) -> bool:
        return self.job_id is not None and not self.finished and self.error is None


@dataclass
class UploadBatch:
    collection: str
    files: list[FileProgress]
    announced: bool = False
    """Whether the page has been redrawn once after every job finished."""

    @property
    def pending(self) -> list[FileProgress]:
        return [f for f in self.files if f.pending]

    @property
    def summary(self) -> str:
        done = sum(f.finished for f in self.files)
        failed = sum(f.error is not None for f in self.files)
        waiting = len(self.files) - done - failed
        parts = [f"{done} indexed", f"{failed} failed"]
        if waiting:
            parts.append(f"{waiting} in progress")
        return f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}: " + ", ".join(parts)


def describe(status: str, chunks: object) -> str:
    """What happened to an indexed file, in words."""
    count = f" ({chunks} chunks)" if isinstance(chunks, int) else ""
    return {
        "added": f"indexed{count}",
        "replaced": f"updated: it replaced the earlier version{count}",
        "unchanged": "already indexed, unchanged",
    }.get(status, f"{status}{count}")
