"""Which variant answers a subject's question on a collection.

A collection's running experiment is read from the store once per collection **version** and
kept in process: every experiment transition bumps the collection's version, and every query
reads the collection row anyway, so a start, pause, stop or promotion made on any replica is
seen by the next query on every replica, at no extra read per query.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from ragserve.experiments.assignment import Split
from ragserve.store.experiments import ExperimentRecord, ExperimentStore, SubjectKind, Variant
from ragserve.types import CollectionInfo

MAX_COLLECTIONS = 10_000


@dataclass(frozen=True)
class Subject:
    """Who asks: the API key (or ``local`` without auth) and, when the client application
    names its end user (``X-Ragserve-User``), that user. An experiment assigning by ``user``
    falls back to the key when no user is named."""

    key: str
    user: str | None = None

    def of(self, kind: SubjectKind) -> str:
        if kind == "user" and self.user:
            return f"user:{self.user}"
        return f"key:{self.key}"


@dataclass(frozen=True)
class Assignment:
    experiment: ExperimentRecord
    variant: Variant
    subject_hash: str


class ExperimentRouter:
    def __init__(self, experiments: ExperimentStore) -> None:
        self._experiments = experiments
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str], tuple[int, ExperimentRecord | None]] = {}

    def assignment(
        self, tenant: str, collection: CollectionInfo, subject: Subject | None
    ) -> Assignment | None:
        """The variant of the collection's running experiment for ``subject``; None when
        nothing runs there or there is no subject to assign (the collection's own
        configuration answers)."""
        if subject is None:
            return None
        experiment = self.active(tenant, collection)
        if experiment is None:
            return None
        who = subject.of(experiment.subject)
        split = Split.of({v.name: v.share for v in experiment.variants})
        variant = experiment.variant(split.assign(experiment.id, who))
        return Assignment(experiment, variant, subject_hash(who))

    def active(self, tenant: str, collection: CollectionInfo) -> ExperimentRecord | None:
        key = (tenant, collection.name)
        with self._lock:
            cached = self._active.get(key)
        if cached is not None and cached[0] == collection.version:
            return cached[1]
        found = self._experiments.active_experiment(tenant, collection.name)
        with self._lock:
            if len(self._active) >= MAX_COLLECTIONS:
                self._active.clear()
            self._active[key] = (collection.version, found)
        return found


def subject_hash(subject: str) -> str:
    """What outcomes record of a subject: never the raw user id or key."""
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()[:16]
