"""Generators side by side on SQuAD 2.0: each question gets its gold paragraph as the only source.

    python benchmarks/generators.py [--n 100] [--seed 0] [--generators extractive,llamacpp]

Prints, per generator: token F1 against the gold answers (SQuAD normalisation, citations
stripped; over answerable questions, an abstention scoring 0), how often the gold answer is
contained in the answer, abstention rates on unanswerable and answerable questions, the share
of non-abstaining answers citing a valid source, overall SQuAD-v2 F1 (abstaining is right on
unanswerable questions) and mean latency.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ragserve.config import LLMSettings
from ragserve.eval.metrics import normalize_answer, token_f1
from ragserve.generate import generators
from ragserve.generate.base import Generator
from ragserve.generate.extractive import ExtractiveGenerator
from ragserve.generate.prompt import extract_citations
from ragserve.types import Chunk, Hit, Source

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared/data/qa/squad-v2.0-dev-cs224n-half.json"
)
_CITATIONS = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")


@dataclass(frozen=True)
class Case:
    question: str
    context: str
    title: str
    answers: tuple[str, ...]


def load_cases(path: Path, n: int, seed: int) -> tuple[list[Case], list[Case]]:
    """``n`` answerable and ``n`` unanswerable questions, sampled with ``seed``."""
    answerable: list[Case] = []
    unanswerable: list[Case] = []
    for article in json.loads(path.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] for a in qa["answers"])
                case = Case(qa["question"], paragraph["context"], article["title"], answers)
                (unanswerable if qa["is_impossible"] else answerable).append(case)
    rng = random.Random(seed)
    return rng.sample(answerable, n), rng.sample(unanswerable, n)


def source_of(case: Case) -> Source:
    chunk = Chunk("c1", "d1", 0, case.context, 1, 0, len(case.context), 0)
    return Source(1, Hit(chunk, 1.0, document_source="squad", document_title=case.title))


def evaluate(
    generator: Generator, answerable: list[Case], unanswerable: list[Case]
) -> dict[str, float]:
    f1: list[float] = []
    contains: list[float] = []
    abstained = {"answerable": 0, "unanswerable": 0}
    cited: list[float] = []
    latencies: list[float] = []
    for kind, cases in (("answerable", answerable), ("unanswerable", unanswerable)):
        for case in cases:
            started = time.perf_counter()
            generation = generator.generate(case.question, [source_of(case)])
            latencies.append(time.perf_counter() - started)
            prediction = "" if generation.abstained else _CITATIONS.sub(" ", generation.text)
            abstained[kind] += generation.abstained
            if not generation.abstained:
                cited.append(float(bool(extract_citations(generation.text, 1))))
            f1.append(token_f1(prediction, case.answers))
            if kind == "answerable":
                text = normalize_answer(prediction)
                contains.append(
                    float(bool(text) and any(normalize_answer(a) in text for a in case.answers))
                )
    n = len(answerable)
    return {
        "F1 answerable": statistics.mean(f1[:n]),
        "gold in answer": statistics.mean(contains),
        "abstain | unanswerable": abstained["unanswerable"] / len(unanswerable),
        "abstain | answerable": abstained["answerable"] / n,
        "cites a source": statistics.mean(cited) if cited else 0.0,
        "F1 overall (v2)": statistics.mean(f1),
        "mean latency ms": 1000 * statistics.mean(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generators", default="extractive,llamacpp")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-coverage", type=float, default=None)
    parser.add_argument("--max-sentences", type=int, default=None)
    args = parser.parse_args()
    answerable, unanswerable = load_cases(args.data, args.n, args.seed)
    results = {}
    for name in args.generators.split(","):
        if name == "extractive" and (args.min_coverage is not None or args.max_sentences):
            generator: Generator = ExtractiveGenerator(
                min_coverage=0.5 if args.min_coverage is None else args.min_coverage,
                max_sentences=args.max_sentences or 3,
            )
        else:
            generator = generators.create(
                name, LLMSettings(provider=name, threads=args.threads, max_tokens=128)
            )
        results[name] = evaluate(generator, answerable, unanswerable)
    print(f"SQuAD 2.0 dev slice, {args.n} answerable + {args.n} unanswerable, seed {args.seed}")
    names = list(results)
    print(f"{'metric':<24}" + "".join(f"{name:>14}" for name in names))
    for metric in next(iter(results.values())):
        print(f"{metric:<24}" + "".join(f"{results[name][metric]:>14.3f}" for name in names))


if __name__ == "__main__":
    main()
