"""The reconciler: periodically submits again jobs orphaned by a crash.

A job's lease expires when its worker dies (SIGKILL, OOM, a lost machine); ``reclaim`` puts it
back to ``queued`` (or ``failed`` after its last attempt) and returns it with any job whose
queue message was lost; the queued ones are submitted again. Every transition is a
compare-and-set in the store, so any number of reconcilers (one per worker and API process)
may run at once: no singleton to keep alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ragserve.observability import get_logger
from ragserve.types import JobRecord

log = get_logger("ragserve.jobs.reconciler")


class Reconciler:
    """Runs ``reclaim`` every ``interval_s`` seconds and submits what it returns."""

    def __init__(
        self,
        reclaim: Callable[[float], list[JobRecord]],
        submit: Callable[[Sequence[JobRecord]], None],
        *,
        interval_s: float,
        requeue_after_s: float,
    ) -> None:
        self._reclaim = reclaim
        self._submit = submit
        self._interval_s = interval_s
        self._requeue_after_s = requeue_after_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, *, queued_for_s: float | None = None) -> int:
        """One pass; returns how many jobs were submitted again."""
        wait = self._requeue_after_s if queued_for_s is None else queued_for_s
        again = [job for job in self._reclaim(wait) if job.state == "queued"]
        if again:
            log.info("jobs_reclaimed", count=len(again))
            self._submit(again)
        return len(again)

    def start(self, *, sweep_queued: bool = False) -> None:
        """Run in a daemon thread; ``sweep_queued`` first submits every queued job (a start
        after a crash or restart picks up what was left behind)."""
        self._thread = threading.Thread(
            target=self._loop, args=(sweep_queued,), name="ragserve-reconciler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self, sweep_queued: bool) -> None:
        first = 0.0 if sweep_queued else None
        while not self._stop.is_set():
            try:
                self.run_once(queued_for_s=first)
            except Exception:  # a store outage must not end the loop
                log.exception("reconcile_failed")
            first = None
            self._stop.wait(self._interval_s)
