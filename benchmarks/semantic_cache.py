"""Semantic cache: hit rate and false-hit rate on SciFact claims over a threshold sweep.

    .venv/bin/python benchmarks/semantic_cache.py [--seed 13] [--data DIR]

The semantic cache reuses a cached answer when a new question's embedding (the service's own
embedder, ``embed_query``) has cosine at or above the threshold with a cached question of the
same scope; the closest one wins. This script replays that rule (``SemanticIndex``) on:

- **The cache**: half of the 1,109 SciFact claims (a seeded random split), as if each had been
  asked and answered once.
- **Should hit**: each cached claim rewritten four ways that keep its meaning — SciFact has no
  paraphrases, and a model-written paraphrase would be neither offline nor reproducible, so
  the rewrites are deterministic: ``question`` ("Is it true that <claim>?"), ``evidence``
  ("What is the evidence that <claim>?"), ``keywords`` (stopwords dropped, as users type into
  search boxes) and ``synonyms`` (a fixed lexicon: increases→raises, associated with→linked
  to, patients→people, …, plus "Do studies show that …?"). Exact respellings (case, spaces,
  trailing "?") never reach the semantic level: they share the exact key. A probe is a
  *correct hit* only when the match is its own claim; a match with another claim is a
  *wrong hit*.
- **Should miss**: the other half's claims, none of them cached. Each is labelled by the
  cached claim closest to it: *same evidence* when they cite a common SciFact document (these
  are mostly the claim's negation or a sibling claim about the same finding, e.g. "TNFAIP3 is
  a tumor enhancer in glioblastoma" vs "… a tumor suppressor …": reusing the answer would be
  wrong, and dangerously so), *other* otherwise. Any hit here is a *false hit*.

Prints, per threshold: the hit rate on rewrites (overall and per rewrite), wrong hits, false
hits on unseen claims (both kinds), and the precision of hits in a stream that is half
rewrites, half unseen claims; then the similarity distribution of the nearest unseen claims,
the lowest threshold (so the highest hit rate) whose false-hit and wrong-hit rates are both at
most ``--max-false`` (0.5%), the same bounding false hits on unrelated claims only (the case of
a corpus without near-identical contradicting questions), and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench_data import REPO_ROOT, scifact_dir
from ragserve.cache.keys import normalise_question
from ragserve.cache.semantic import SemanticIndex
from ragserve.config import EmbedSettings
from ragserve.embed import embedders
from ragserve.types import Matrix

THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "by",
        "from",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "as",
        "into",
        "than",
    ]
)
LEXICON = {
    "increases": "raises",
    "increase": "raise",
    "increased": "raised",
    "decreases": "lowers",
    "decrease": "lower",
    "decreased": "lowered",
    "reduces": "lowers",
    "reduce": "lower",
    "reduced": "lowered",
    "associated with": "linked to",
    "patients": "people",
    "results in": "leads to",
    "causes": "leads to",
    "improves": "enhances",
    "inhibits": "blocks",
    "prevents": "stops",
    "higher": "greater",
    "risk": "likelihood",
    "treatment": "therapy",
    "mice": "rodents",
}
_LEXICON = re.compile(r"\b(" + "|".join(sorted(LEXICON, key=len, reverse=True)) + r")\b", re.I)


# --- claims and rewrites ------------------------------------------------------------------------


def read_claims(data: Path) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Claim text by id, and the SciFact documents each claim cites (train + test qrels)."""
    with (data / "queries.jsonl").open(encoding="utf-8") as lines:
        claims = {r["_id"]: r["text"].strip() for r in map(json.loads, lines) if r["text"].strip()}
    cited: dict[str, set[str]] = defaultdict(set)
    for split in ("train", "test"):
        path = data / "qrels" / f"{split}.tsv"
        if path.is_file():
            with path.open(encoding="utf-8", newline="") as rows:
                for row in csv.DictReader(rows, delimiter="\t"):
                    cited[row["query-id"]].add(row["corpus-id"])
    return claims, cited


def inner(claim: str) -> str:
    """The claim as a clause: no final period, lower-case first letter unless an acronym."""
    text = claim.rstrip(". ")
    if len(text) > 1 and text[0].isupper() and not (text[1].isupper() or text[1].isdigit()):
        text = text[0].lower() + text[1:]
    return text


def keywords(claim: str) -> str:
    words = re.findall(r"[\w\-+/]+", claim)
    return " ".join(w for w in words if w.lower() not in STOPWORDS)


def synonyms(claim: str) -> str:
    swapped = _LEXICON.sub(lambda m: LEXICON[m.group(0).lower()], inner(claim))
    return f"Do studies show that {swapped}?"


REWRITES: dict[str, Callable[[str], str]] = {
    "question": lambda c: f"Is it true that {inner(c)}?",
    "evidence": lambda c: f"What is the evidence that {inner(c)}?",
    "keywords": keywords,
    "synonyms": synonyms,
}


# --- measuring ----------------------------------------------------------------------------------


def embed(texts: Sequence[str]) -> Matrix:
    """Each text through the service's embedder, exactly as the semantic cache embeds it."""
    settings = EmbedSettings(cache_dir=REPO_ROOT / "benchmarks" / ".cache" / "models")
    embedder = embedders.create(settings.provider, settings)
    return np.stack([embedder.embed_query(text).reshape(-1) for text in texts])


def nearest(cache: Matrix, probes: Matrix) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """For each probe, the most similar cached claim and its cosine (vectors are unit length)."""
    similarities = probes @ cache.T
    best = similarities.argmax(axis=1)
    return best, similarities[np.arange(len(best)), best]


def sweep(
    positives: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]],
    negatives: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> list[dict[str, Any]]:
    """Rates per threshold. positives: rewrite -> (best index, similarity, own index);
    negatives: (similarity, shares evidence with the best match)."""
    rows = []
    neg_sim, neg_same = negatives
    for t in THRESHOLDS:
        per: dict[str, float] = {}
        correct = wrong = total = 0
        for name, (best, sim, own) in positives.items():
            hit = sim >= t
            per[name] = float((hit & (best == own)).mean())
            correct += int((hit & (best == own)).sum())
            wrong += int((hit & (best != own)).sum())
            total += len(best)
        false_hits = neg_sim >= t
        hit_rate, wrong_rate = correct / total, wrong / total
        false_rate = float(false_hits.mean())
        # a stream of half rewrites, half unseen claims: the share of hits that are right
        right, bad = hit_rate, wrong_rate + false_rate
        rows.append(
            {
                "threshold": t,
                "hit_rate": round(hit_rate, 4),
                "per_rewrite": {k: round(v, 4) for k, v in per.items()},
                "wrong_hit_rate": round(wrong_rate, 4),
                "false_hit_rate": round(false_rate, 4),
                "false_same_evidence": round(float(false_hits[neg_same].mean()), 4),
                "false_other": round(float(false_hits[~neg_same].mean()), 4),
                "precision_50_50": round(right / (right + bad), 4) if right + bad else 1.0,
            }
        )
    return rows


def recommend(
    rows: list[dict[str, Any]], max_false: float, rates: Sequence[str]
) -> dict[str, Any] | None:
    """The lowest threshold (so the most hits) whose ``rates`` all stay within the bound."""
    fits = [r for r in rows if all(r[rate] <= max_false for rate in rates)]
    return min(fits, key=lambda r: r["threshold"]) if fits else None


def check_with_index(cache_ids: list[str], cache: Matrix, probes: Matrix, threshold: float) -> int:
    """Hits ``SemanticIndex`` itself finds at ``threshold`` (a check on the numpy replay)."""
    index = SemanticIndex(threshold, max_per_scope=len(cache_ids))
    for claim_id, vector in zip(cache_ids, cache, strict=True):
        index.add("scope", vector, claim_id)
    return sum(index.lookup("scope", vector) is not None for vector in probes)


# --- main ---------------------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def print_rows(rows: list[dict[str, Any]]) -> None:
    names = list(REWRITES)
    header = (
        f"{'t':>5}{'hit':>7}"
        + "".join(f"{n[:8]:>9}" for n in names)
        + f"{'wrong':>7}{'false':>7}{'same-ev':>8}{'other':>7}{'prec':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['threshold']:>5.2f}{pct(r['hit_rate']):>7}"
            + "".join(f"{pct(r['per_rewrite'][n]):>9}" for n in names)
            + f"{pct(r['wrong_hit_rate']):>7}{pct(r['false_hit_rate']):>7}"
            f"{pct(r['false_same_evidence']):>8}{pct(r['false_other']):>7}"
            f"{pct(r['precision_50_50']):>7}"
        )
    print(
        "(percentages; hit: rewrites matched to their own claim; wrong: rewrites matched to "
        "another claim; false: unseen claims matched; prec: share of right hits, 50/50 mix)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-false", type=float, default=0.005, help="bound on false hits")
    parser.add_argument("--data", type=Path, default=None, help="BEIR SciFact folder")
    args = parser.parse_args()
    claims, cited = read_claims(scifact_dir(args.data))
    ids = sorted(claims, key=int)
    random.Random(args.seed).shuffle(ids)
    cached_ids, unseen_ids = sorted(ids[: len(ids) // 2], key=int), ids[len(ids) // 2 :]
    # SciFact repeats a few claims word for word: those are exact-key hits, not semantic ones
    cached_texts = {normalise_question(claims[i]) for i in cached_ids}
    duplicates = [i for i in unseen_ids if normalise_question(claims[i]) in cached_texts]
    unseen_ids = [i for i in unseen_ids if i not in duplicates]
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; {len(claims)} claims: "
        f"{len(cached_ids)} cached, {len(unseen_ids)} unseen (left out: {len(duplicates)} "
        "unseen claims that repeat a cached one word for word)"
    )

    rewrites = {
        name: [rewrite(claims[i]) for i in cached_ids] for name, rewrite in REWRITES.items()
    }
    changed = {
        name: sum(
            normalise_question(t) != normalise_question(claims[i])
            for t, i in zip(texts, cached_ids, strict=True)
        )
        for name, texts in rewrites.items()
    }
    started = time.perf_counter()
    texts = [claims[i] for i in cached_ids + unseen_ids] + [
        t for ts in rewrites.values() for t in ts
    ]
    vectors = embed(texts)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - started:.0f} s")
    first_rewrite = len(cached_ids) + len(unseen_ids)
    cache, unseen = vectors[: len(cached_ids)], vectors[len(cached_ids) : first_rewrite]
    own = np.arange(len(cached_ids))
    positives = {}
    offset = first_rewrite
    for name in REWRITES:
        probe = vectors[offset : offset + len(cached_ids)]
        offset += len(cached_ids)
        best, sim = nearest(cache, probe)
        positives[name] = (best, sim, own)
    neg_best, neg_sim = nearest(cache, unseen)
    same = np.array(
        [bool(cited[u] & cited[cached_ids[b]]) for u, b in zip(unseen_ids, neg_best, strict=True)]
    )
    rows = sweep(positives, (neg_sim, same))
    print_rows(rows)
    quantiles = {q: round(float(np.quantile(neg_sim, q)), 3) for q in (0.5, 0.9, 0.99, 1.0)}
    same_q = {q: round(float(np.quantile(neg_sim[same], q)), 3) for q in (0.5, 0.9, 1.0)}
    print(
        f"unseen claims' nearest cached claim, cosine quantiles: {quantiles}; "
        f"of the {int(same.sum())} sharing evidence with it: {same_q}"
    )
    print(f"rewrites that differ from their claim after normalisation: {changed}")
    strict = recommend(rows, args.max_false, ("false_hit_rate", "wrong_hit_rate"))
    unrelated = recommend(rows, args.max_false, ("false_other",))
    for label, choice in (("every unseen claim", strict), ("unrelated claims only", unrelated)):
        if choice is None:
            print(f"bounding false hits on {label} to {args.max_false:.1%}: no threshold does")
            continue
        index_hits = check_with_index(cached_ids, cache, unseen, choice["threshold"])
        print(
            f"bounding false hits on {label} to {args.max_false:.1%}: threshold "
            f"{choice['threshold']:.2f}, hit rate {choice['hit_rate']:.1%}, false hits "
            f"{choice['false_hit_rate']:.1%} (SemanticIndex: {index_hits} of {len(unseen_ids)}), "
            f"of which same evidence {choice['false_same_evidence']:.1%}, wrong hits "
            f"{choice['wrong_hit_rate']:.1%}"
        )
    print(
        json.dumps(
            {
                "benchmark": "semantic_cache",
                "seed": args.seed,
                "cached": len(cached_ids),
                "unseen": len(unseen_ids),
                "same_evidence": int(same.sum()),
                "quantiles": quantiles,
                "strict": strict,
                "unrelated_only": unrelated,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
