"""Evaluation: retrieval and QA metrics, and loaders for BEIR and SQuAD datasets."""

from ragserve.eval.beir import BeirDataset, BeirDoc, corpus_fingerprint, load_beir
from ragserve.eval.metrics import (
    evaluate_run,
    exact_match,
    f1_at_k,
    hit_rate_at_k,
    ndcg_at_k,
    normalize_answer,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
    token_f1,
)
from ragserve.eval.squad import SquadDataset, SquadParagraph, SquadQuestion, load_squad

__all__ = [
    "BeirDataset",
    "BeirDoc",
    "SquadDataset",
    "SquadParagraph",
    "SquadQuestion",
    "corpus_fingerprint",
    "evaluate_run",
    "exact_match",
    "f1_at_k",
    "hit_rate_at_k",
    "load_beir",
    "load_squad",
    "ndcg_at_k",
    "normalize_answer",
    "precision_at_k",
    "recall_at_k",
    "reciprocal_rank",
    "token_f1",
]
