"""BM25 keyword search over an in-memory inverted index, one per collection.

Like ``VectorMatrix``, a ``LexicalIndex`` is derived from the store at one collection version and
patched from the change log. Its input is each chunk's analysed terms (``ragserve.analysis.terms``
joined by spaces, as the FTS5 table stores them).

Layout: terms get dense ids (``vocabulary``); ``Postings`` lists, for each term, the *slots*
(index rows) that contain it and how often, as CSR arrays. Slots follow chunk-key order and keep
their number until compaction, so a patch costs time in proportion to the change, not to the
collection: removed chunks are marked dead, added ones get new slots whose postings go to a small
second ``Postings`` (the tail). When the tail or the dead slots outgrow a quarter of the index,
both are merged into one ``Postings``, in memory.

Scoring is Lucene's BM25 with ``k1 = 1.2``, ``b = 0.75``::

    score(d, q) = Σ_{t in q} qtf(t) · idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·dl/avgdl))
    idf(t) = ln(1 + (N − n(t) + 0.5) / (n(t) + 0.5))

Every occurrence of a term in the query counts (``qtf``), as in a Lucene ``BooleanQuery`` of
term clauses. ``N``, ``n`` and ``avgdl`` count only the live chunks with at least one term
(Lucene's ``docCount``), so scores equal a from-scratch computation at every version. ``tf`` is
stored as uint16: a term repeated more than 65,535 times in one chunk scores as if 65,535 times.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, count
from typing import Self

import numpy as np
import numpy.typing as npt

from ragserve.store.vectors import Ids, ids, key_positions

PATCH_MIN = 1000
"""A catch-up adding more chunks than this and than the index holds reloads it instead."""

K1 = 1.2
B = 0.75
COMPACT_FRACTION = 0.25
"""Merge the tail into the main postings, and drop dead slots, beyond this share of either."""

Counts = npt.NDArray[np.uint16]
Floats = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]

_SLOT_BITS = 32
_SLOT_MASK = (1 << _SLOT_BITS) - 1
_MAX_TF = np.iinfo(np.uint16).max
# A batch of rows tokenized at once: bounds the transient Python strings of a full build.
BUILD_BATCH = 4096


@dataclass(frozen=True)
class TermsDelta:
    """The net effect of the writes from ``old_version`` to ``new_version``: chunk keys removed,
    then chunks added (ascending keys) with their documents and analysed terms."""

    old_version: int
    new_version: int
    removed: Ids
    added: Ids
    added_documents: Ids
    added_terms: Sequence[str]


@dataclass(frozen=True)
class Postings:
    """For term id ``t``: slots ``slots[offsets[t]:offsets[t + 1]]`` (ascending) contain it,
    ``counts`` times each. Terms beyond ``offsets`` have no postings here."""

    offsets: Ids
    slots: npt.NDArray[np.int32]
    counts: Counts

    @classmethod
    def empty(cls) -> Postings:
        return cls(ids([0]), np.zeros(0, np.int32), np.zeros(0, np.uint16))

    @classmethod
    def from_pairs(cls, pairs: Ids, counts: Counts, terms: int) -> Postings:
        """From ascending ``term << 32 | slot`` pairs, each with its term frequency."""
        offsets = np.zeros(terms + 1, np.int64)
        np.cumsum(np.bincount(pairs >> _SLOT_BITS, minlength=terms), out=offsets[1:])
        return cls(offsets, (pairs & _SLOT_MASK).astype(np.int32), counts)

    @property
    def size(self) -> int:
        return int(self.slots.size)

    def appended(self, more: Postings, terms: int) -> Postings:
        """These postings followed, term by term, by ``more``'s (whose slots all come later)."""
        mine, theirs = _padded(self.offsets, terms), _padded(more.offsets, terms)
        where = np.repeat(mine[1:], np.diff(theirs))
        return Postings(
            mine + theirs,
            np.insert(self.slots, where, more.slots),
            np.insert(self.counts, where, more.counts),
        )

    def kept(self, alive: npt.NDArray[np.bool_], renumber: npt.NDArray[np.int32]) -> Postings:
        """Without the postings of dead slots; the others renumbered (in the same order)."""
        keep = alive[self.slots]
        before = np.zeros(self.slots.size + 1, np.int64)
        np.cumsum(keep, out=before[1:])
        return Postings(before[self.offsets], renumber[self.slots[keep]], self.counts[keep])

    def of(self, term: int) -> tuple[npt.NDArray[np.int32], Counts]:
        if term + 1 >= self.offsets.size:
            return self.slots[:0], self.counts[:0]
        start, end = self.offsets[term], self.offsets[term + 1]
        return self.slots[start:end], self.counts[start:end]


@dataclass(frozen=True)
class LexicalIndex:
    """The analysed terms of one collection's chunks at one version. Immutable: a search holds
    on to the instance it started with while a newer one replaces it in the cache.

    Per slot: the chunk ``keys`` (ascending), their ``documents``, ``lengths`` (terms) and
    ``alive`` (False once removed). Chunks without any term have no slot: they never match.
    """

    version: int
    vocabulary: dict[str, int]
    """Term → id; never changed once the index is built (a patch copies it to add terms)."""
    keys: Ids
    documents: Ids
    lengths: Floats
    alive: npt.NDArray[np.bool_]
    main: Postings
    tail: Postings
    live: int
    """Live slots: BM25's ``N``."""
    norms: Floats
    """``k1·(1 − b + b·dl/avgdl)`` per slot at this version."""

    @classmethod
    def build(cls, version: int, batches: Iterable[tuple[Ids, Ids, Sequence[str]]]) -> Self:
        """From ``(keys, documents, terms)`` batches of rows, keys ascending across batches."""
        # Term ids are first the position of the term's first occurrence (one dict operation
        # per token), renumbered 0, 1, ... once every row is read.
        first_seen: dict[str, int] = {}
        position = count()
        keys, documents, lengths, pairs = [], [], [], []
        slots = 0
        for batch_keys, batch_documents, texts in batches:
            split = [text.split() for text in texts]
            batch_lengths = _lengths(split)
            token_slots = _token_slots(batch_lengths, first=slots)
            term_ids = np.fromiter(
                map(first_seen.setdefault, chain.from_iterable(split), position),
                np.int64,
                count=token_slots.size,
            )
            pairs.append(_pairs(term_ids, token_slots))
            kept = batch_lengths > 0
            keys.append(batch_keys[kept])
            documents.append(batch_documents[kept])
            lengths.append(batch_lengths[kept])
            slots += int(np.count_nonzero(kept))
        if next(position) > _SLOT_MASK >> 1:
            raise ValueError(f"an index holds at most {_SLOT_MASK >> 1:,} terms in all")
        unique, counts = _counted(_drained(pairs))
        firsts = np.fromiter(first_seen.values(), np.int64, count=len(first_seen))
        offsets = np.append(np.searchsorted(unique, firsts << _SLOT_BITS), unique.size)
        main = Postings(offsets, (unique & _SLOT_MASK).astype(np.int32), counts)
        key_array = np.concatenate(keys) if keys else ids([])
        return cls.at(
            version,
            {term: i for i, term in enumerate(first_seen)},
            key_array,
            np.concatenate(documents) if documents else ids([]),
            np.concatenate(lengths).astype(np.float32) if lengths else np.zeros(0, np.float32),
            np.ones(key_array.size, np.bool_),
            main,
            Postings.empty(),
        )

    @classmethod
    def at(
        cls,
        version: int,
        vocabulary: dict[str, int],
        keys: Ids,
        documents: Ids,
        lengths: Floats,
        alive: npt.NDArray[np.bool_],
        main: Postings,
        tail: Postings,
    ) -> Self:
        """The index over these slots, with the statistics BM25 needs computed."""
        live = int(np.count_nonzero(alive))
        total = float(lengths.sum(dtype=np.float64, where=alive))
        average = total / live if live else 1.0
        norms = (K1 * (1.0 - B + B * lengths.astype(np.float64) / average)).astype(np.float32)
        return cls(version, vocabulary, keys, documents, lengths, alive, main, tail, live, norms)

    @property
    def slots(self) -> int:
        return int(self.keys.size)

    def positions(self, keys: Ids) -> Ids:
        """Live slots of the given chunk keys (keys not indexed are skipped)."""
        found = key_positions(self.keys, keys)
        return found[self.alive[found]]

    def positions_of_documents(self, documents: Ids) -> Ids:
        """Live slots of every chunk of the given documents."""
        return ids(np.flatnonzero(np.isin(self.documents, documents) & self.alive))

    def scores(self, terms: Sequence[str]) -> Scores:
        """BM25 score of every slot for a query of these analysed terms (0: no term matches)."""
        wanted = Counter(self.vocabulary[t] for t in terms if t in self.vocabulary)
        slot_parts, weight_parts = [], []
        for term, repeats in wanted.items():
            slots, counts = self._postings(term)
            if slots.size == 0:
                continue
            n = slots.size
            idf = math.log1p((self.live - n + 0.5) / (n + 0.5))
            tf = counts.astype(np.float32)
            weight = tf * np.float32(repeats * idf * (K1 + 1.0)) / (tf + self.norms[slots])
            slot_parts.append(slots)
            weight_parts.append(weight)
        if not slot_parts:
            return np.zeros(self.slots, np.float64)
        summed = np.bincount(
            np.concatenate(slot_parts), np.concatenate(weight_parts), minlength=self.slots
        )
        return summed.astype(np.float64, copy=False)

    def top(
        self, terms: Sequence[str], limit: int, positions: Ids | None = None
    ) -> tuple[Ids, Scores]:
        """Keys and scores of the ``limit`` best matching chunks (among ``positions``), best
        first; ties in key order."""
        scores = self.scores(terms)
        if positions is None:
            matching = np.flatnonzero(scores > 0)
        else:
            matching = positions[scores[positions] > 0]
        k = min(limit, int(matching.size))
        if k <= 0:
            return ids([]), np.zeros(0, np.float64)
        if k < matching.size:
            matching = matching[np.argpartition(-scores[matching], k - 1)[:k]]
        best = matching[np.lexsort((self.keys[matching], -scores[matching]))]
        return self.keys[best], scores[best]

    def apply(self, delta: TermsDelta) -> Self:
        """The index at ``delta.new_version``: removed slots marked dead, added chunks appended
        to the tail; merged into one postings list when tail or dead slots grow too large."""
        if delta.old_version != self.version:
            raise ValueError(f"delta starts at version {delta.old_version}, not {self.version}")
        if delta.added.size and self.keys.size and delta.added[0] <= self.keys[-1]:
            raise ValueError("added chunk keys must follow every indexed key")
        alive = self.alive.copy()
        alive[self.positions(delta.removed)] = False
        split = [text.split() for text in delta.added_terms]
        lengths = _lengths(split)
        vocabulary = self.vocabulary
        if any(term not in vocabulary for term in chain.from_iterable(split)):
            vocabulary = dict(vocabulary)
            _add_terms(vocabulary, split)
        token_slots = _token_slots(lengths, first=self.slots)
        pairs = _pairs(_term_ids(vocabulary, split, token_slots.size), token_slots)
        added = Postings.from_pairs(*_counted(pairs), len(vocabulary))
        tail = self.tail.appended(added, len(vocabulary))
        kept = lengths > 0
        patched = self.at(
            delta.new_version,
            vocabulary,
            np.concatenate([self.keys, delta.added[kept]]),
            np.concatenate([self.documents, delta.added_documents[kept]]),
            np.concatenate([self.lengths, lengths[kept].astype(np.float32)]),
            np.concatenate([alive, np.ones(int(np.count_nonzero(kept)), np.bool_)]),
            self.main,
            tail,
        )
        return patched.compacted() if patched._crowded() else patched

    def compacted(self) -> Self:
        """The same index with live slots only, one postings list and only the live terms."""
        live = np.flatnonzero(self.alive)
        main, tail = self.main, self.tail
        if live.size < self.slots:
            renumber = np.full(self.slots, -1, np.int32)
            renumber[live] = np.arange(live.size, dtype=np.int32)
            main, tail = main.kept(self.alive, renumber), tail.kept(self.alive, renumber)
        merged = main.appended(tail, len(self.vocabulary))
        used = np.diff(merged.offsets) > 0
        vocabulary = self.vocabulary
        if not used.all():  # dropping a term with no postings drops its empty CSR segment
            keep, new_ids = used.tolist(), (np.cumsum(used) - 1).tolist()
            vocabulary = {t: new_ids[i] for t, i in self.vocabulary.items() if keep[i]}
            offsets = np.append(merged.offsets[:-1][used], merged.offsets[-1])
            merged = Postings(offsets, merged.slots, merged.counts)
        return self.at(
            self.version,
            vocabulary,
            self.keys[live],
            self.documents[live],
            self.lengths[live],
            np.ones(live.size, np.bool_),
            merged,
            Postings.empty(),
        )

    def _crowded(self) -> bool:
        dead = self.slots - self.live
        return (
            self.tail.size > COMPACT_FRACTION * self.main.size
            or dead > COMPACT_FRACTION * self.slots
        )

    def _postings(self, term: int) -> tuple[npt.NDArray[np.int32], Counts]:
        slots, counts = self.main.of(term)
        if self.tail.size:
            more_slots, more_counts = self.tail.of(term)
            if more_slots.size:
                slots = np.concatenate([slots, more_slots])
                counts = np.concatenate([counts, more_counts])
        if self.live < self.slots:
            keep = self.alive[slots]
            slots, counts = slots[keep], counts[keep]
        return slots, counts


def _lengths(split: Sequence[Sequence[str]]) -> Ids:
    return np.fromiter(map(len, split), np.int64, count=len(split))


def _add_terms(vocabulary: dict[str, int], split: Sequence[Sequence[str]]) -> None:
    """Give each term not yet in ``vocabulary`` the next id."""
    new = dict.fromkeys(chain.from_iterable(split)).keys() - vocabulary.keys()
    vocabulary.update(zip(new, range(len(vocabulary), len(vocabulary) + len(new)), strict=True))


def _term_ids(vocabulary: dict[str, int], split: Sequence[Sequence[str]], tokens: int) -> Ids:
    return np.fromiter(
        map(vocabulary.__getitem__, chain.from_iterable(split)), np.int64, count=tokens
    )


def _token_slots(lengths: Ids, *, first: int) -> Ids:
    """The slot of every token, rows without tokens taking no slot."""
    kept = lengths[lengths > 0]
    return np.repeat(np.arange(first, first + kept.size, dtype=np.int64), kept)


def _pairs(term_ids: Ids, slots: Ids) -> Ids:
    if slots.size and int(slots[-1]) > _SLOT_MASK:
        raise ValueError(f"an index holds at most {_SLOT_MASK + 1:,} chunks")
    term_ids <<= _SLOT_BITS
    term_ids |= slots
    return term_ids


def _drained(parts: list[Ids]) -> Ids:
    """The parts as one array, the list emptied so that they can be freed."""
    whole = np.concatenate(parts) if parts else ids([])
    parts.clear()
    return whole


def _counted(pairs: Ids) -> tuple[Ids, Counts]:
    """Distinct pairs, ascending, with how often each occurs in ``pairs`` (sorted in place)."""
    pairs.sort()
    first = np.empty(pairs.size, np.bool_)
    first[:1] = True
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    size = pairs.size
    unique = pairs[starts]
    del pairs, first  # a full build's largest arrays: free them before the next ones
    counts = np.empty(starts.size, np.int64)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1:] = size - starts[-1:]
    np.minimum(counts, _MAX_TF, out=counts)
    return unique, counts.astype(np.uint16)


def _padded(offsets: Ids, terms: int) -> Ids:
    """CSR offsets extended to ``terms`` terms (the missing ones without postings)."""
    if offsets.size > terms:
        return offsets
    return np.concatenate([offsets, np.full(terms + 1 - offsets.size, offsets[-1])])
