"""``ragserve eval``: evaluate pipeline configurations on BEIR and SQuAD datasets, store each
run, compare runs with paired tests, write HTML reports, and gate CI on a stored baseline.

Exit codes: 0 done, 1 operational error, 2 bad input (unreadable configuration, unknown run,
runs of different datasets), 3 a run is significantly worse than the baseline on a gate
metric.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ragserve.cli_common import (
    DataDir,
    JsonOpt,
    ModeOpt,
    TenantOpt,
    err,
    fail,
    guard,
    load_settings,
    out,
    parse_mode,
    print_metrics,
    progress_bar,
)
from ragserve.config import Settings
from ragserve.eval.beir import BeirDataset
from ragserve.eval.candidates import Candidate, resolve_candidates
from ragserve.eval.compare import RunComparison, comparable_scores, compare_runs
from ragserve.eval.runs import DatasetSpec, LoadedDataset, load_dataset, reports_dir, run_eval
from ragserve.pipeline import PipelineConfig
from ragserve.store import open_store
from ragserve.store.experiments import EvalRunRecord, ExperimentStore

if TYPE_CHECKING:
    from ragserve.eval.judge import AnswerJudge, OpenAIJudge

eval_app = typer.Typer(
    help="Evaluate configurations on BEIR/SQuAD datasets; store, compare and gate runs.",
    no_args_is_help=True,
)
WORSE_EXIT = 3

ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option("--config", help="Partial pipeline configuration (JSON or TOML); repeatable."),
]
ConfigNameOpt = Annotated[
    list[str] | None,
    typer.Option("--config-name", help="A stored configuration, NAME or NAME@VERSION."),
]
ExperimentOpt = Annotated[
    str | None, typer.Option("--experiment", help="Evaluate every variant of an experiment.")
]
LabelOpt = Annotated[str, typer.Option("--label", help="A label for the stored run(s).")]
BaselineOpt = Annotated[
    str | None, typer.Option("--baseline", help="A stored run to compare the new run(s) with.")
]
GateOpt = Annotated[
    list[str] | None,
    typer.Option("--gate", help="Exit 3 when significantly worse than --baseline on it."),
]


@dataclass(frozen=True)
class Plan:
    """What one ``eval beir|squad`` command asked for."""

    configs: Sequence[Path]
    config_names: Sequence[str]
    experiment: str | None
    mode: str | None
    label: str
    baseline: str | None
    gates: Sequence[str]
    as_json: bool


@eval_app.command("beir")
def eval_beir(
    directory: Annotated[Path, typer.Argument(help="A BEIR dataset folder.")],
    split: Annotated[str, typer.Option("--split", help="Qrels split: test, train, dev.")] = "test",
    mode: ModeOpt = None,
    config: ConfigOpt = None,
    config_name: ConfigNameOpt = None,
    experiment: ExperimentOpt = None,
    label: LabelOpt = "",
    baseline: BaselineOpt = None,
    gate: GateOpt = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Retrieval quality on a BEIR dataset: nDCG@10, Recall@100, MRR@10, P/R/F1@k."""
    plan = Plan(config or [], config_name or [], experiment, mode, label, baseline, gate or [],
                as_json)  # fmt: skip
    settings = _with_tenant(load_settings(data_dir, retrieve={"candidates": 300}), tenant)
    _evaluate(settings, DatasetSpec("beir", directory, split=split), plan)


@eval_app.command("squad")
def eval_squad(
    path: Annotated[Path, typer.Argument(help="A SQuAD v2 JSON file.")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N questions.")] = None,
    mode: ModeOpt = None,
    config: ConfigOpt = None,
    config_name: ConfigNameOpt = None,
    experiment: ExperimentOpt = None,
    label: LabelOpt = "",
    baseline: BaselineOpt = None,
    gate: GateOpt = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Answer quality on SQuAD v2: exact match, token F1, abstention on unanswerable,
    citation correctness, and the judge's ratings when ``eval.judge_base_url`` is set."""
    plan = Plan(config or [], config_name or [], experiment, mode, label, baseline, gate or [],
                as_json)  # fmt: skip
    settings = _with_tenant(load_settings(data_dir), tenant)
    _evaluate(settings, DatasetSpec("squad", path, limit=limit), plan)


@eval_app.command("compare")
def eval_compare(
    run_a: Annotated[str, typer.Argument(help="Run A (the baseline): id or 6+ char prefix.")],
    run_b: Annotated[str, typer.Argument(help="Run B: id or prefix.")],
    report: Annotated[
        Path | None, typer.Option("--report", help="HTML report path (JSON written beside).")
    ] = None,
    fail_if_worse: Annotated[
        list[str] | None,
        typer.Option("--fail-if-worse", help="Exit 3 when B is significantly worse on it."),
    ] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Paired comparison of two stored runs over their shared queries, with a report."""
    settings = _with_tenant(load_settings(data_dir), tenant)
    with _experiments(settings) as store:
        a = guard(lambda: store.get_eval_run(settings.tenant, run_a))
        b = guard(lambda: store.get_eval_run(settings.tenant, run_b))
    comparison = guard(lambda: compare_runs(a, b))
    gates = fail_if_worse or []
    for name in gates:
        guard(partial(comparison.metric, name))
    _publish(comparison, a, b, settings, as_json, html_path=report)
    _check_gates(comparison, gates)


@eval_app.command("runs")
def eval_runs(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset name or fingerprint.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """List stored runs, newest first."""
    settings = _with_tenant(load_settings(data_dir), tenant)
    is_fingerprint = dataset is not None and len(dataset) == 16 and _is_hex(dataset)
    with _experiments(settings) as store:
        runs = guard(
            lambda: store.list_eval_runs(
                settings.tenant,
                dataset_fingerprint=dataset if is_fingerprint else None,
                limit=limit if dataset is None or is_fingerprint else 10_000,
            )
        )
    if dataset is not None and not is_fingerprint:
        runs = [run for run in runs if dataset in (run.dataset, run.dataset.split("/")[0])][:limit]
    if as_json:
        print(json.dumps([_run_summary(run) for run in runs]))
        return
    table = Table("run", "created", "label", "dataset", "config", "queries", "headline")
    for run in runs:
        table.add_row(
            run.id[:12], run.created_at, run.label, run.dataset, run.config_hash,
            f"{run.timing.get('queries', 0):.0f}", _headline(run),
        )  # fmt: skip
    _wide().print(table)


@eval_app.command("show")
def eval_show(
    run_id: Annotated[str, typer.Argument(help="A run id or 6+ char prefix.")],
    report: Annotated[Path | None, typer.Option("--report", help="Write an HTML report.")] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Print one run's metrics and timing; optionally write its HTML report."""
    settings = _with_tenant(load_settings(data_dir), tenant)
    with _experiments(settings) as store:
        run = guard(lambda: store.get_eval_run(settings.tenant, run_id))
    if report is not None:
        from ragserve.eval.report import run_report

        _write(report, run_report(run))
    if as_json:
        print(json.dumps({**_run_summary(run), "config": run.config, "per_query": run.per_query}))
        return
    print_metrics({**_run_summary(run), **run.metrics, **run.timing}, as_json=False)
    if report is not None:
        err.print(f"report: {report}", highlight=False)


# ---- evaluation ----------------------------------------------------------------------------


def _evaluate(settings: Settings, spec: DatasetSpec, plan: Plan) -> None:
    """Resolve the configurations, run and store each, compare, and gate."""
    mode = parse_mode(plan.mode)
    if plan.gates and plan.baseline is None:
        fail("--gate needs --baseline RUN_ID: the stored run to compare with", 2)
    dataset = guard(lambda: load_dataset(spec))
    with _experiments(settings) as store:
        candidates = guard(
            lambda: resolve_candidates(
                store,
                settings.tenant,
                PipelineConfig.from_settings(settings),
                files=plan.configs,
                config_names=plan.config_names,
                experiment=plan.experiment,
                mode=mode,
                label=plan.label,
            )
        )
        baseline = _baseline(store, settings.tenant, plan.baseline)
    if baseline is not None:
        _check_baseline(baseline, dataset, plan.gates)
    judge = _judge(settings) if spec.kind == "squad" else None
    try:
        records = [_run_one(settings, dataset, c, judge, plan.as_json) for c in candidates]
    finally:
        if judge is not None:
            judge.close()
    first = records[0]
    for other in records[1:]:
        _publish(guard(partial(compare_runs, first, other)), first, other, settings, plan.as_json)
    if baseline is None:
        return
    comparisons = [guard(partial(compare_runs, baseline, run)) for run in records]
    for comparison, run in zip(comparisons, records, strict=True):
        _publish(comparison, baseline, run, settings, plan.as_json)
    for comparison in comparisons:
        _check_gates(comparison, plan.gates)


def _check_baseline(baseline: EvalRunRecord, dataset: LoadedDataset, gates: Sequence[str]) -> None:
    """Refuse, before any run, a baseline of another dataset or gates it has no scores for."""
    if baseline.dataset_fingerprint != dataset.fingerprint:
        fail(
            f"baseline {baseline.id[:12]} is of dataset {baseline.dataset} "
            f"({baseline.dataset_fingerprint}), not {dataset.name} ({dataset.fingerprint})",
            2,
        )
    scored = {key for row in comparable_scores(baseline.per_query).values() for key in row}
    unknown = [gate for gate in gates if gate not in scored]
    if unknown:
        fail(
            f"gate metric(s) {', '.join(unknown)} not scored per query in baseline "
            f"{baseline.id[:12]} (available: {', '.join(sorted(scored))})",
            2,
        )


def _run_one(
    settings: Settings,
    dataset: LoadedDataset,
    candidate: Candidate,
    judge: AnswerJudge | None,
    as_json: bool,
) -> EvalRunRecord:
    from ragserve.eval.runs import save_details

    with progress_bar(as_json) as bar:
        total = len(dataset.data.corpus) if isinstance(dataset.data, BeirDataset) else None
        task = bar.add_task(f"{candidate.label or 'evaluating'}", total=total)
        record, evaluation = guard(
            lambda: run_eval(
                settings,
                dataset,
                candidate.config,
                label=candidate.label,
                config_name=candidate.config_name,
                experiment_id=candidate.experiment_id,
                variant=candidate.variant,
                judge=judge,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        )
    details = save_details(evaluation, reports_dir(settings) / f"{record.id}-answers.jsonl")
    summary = {**_run_summary(record), "mode": candidate.config.retrieve.mode, **record.metrics}
    print_metrics(summary, as_json)
    if not as_json:
        err.print(f"stored run {record.id} ({record.label or 'no label'})", highlight=False)
        if details is not None:
            err.print(f"answers: {details}", highlight=False)
    return record


def _judge(settings: Settings) -> OpenAIJudge | None:
    from ragserve.eval.judge import OpenAIJudge

    return guard(lambda: OpenAIJudge.from_settings(settings.eval))


# ---- comparisons ---------------------------------------------------------------------------


def _publish(
    comparison: RunComparison,
    a: EvalRunRecord,
    b: EvalRunRecord,
    settings: Settings,
    as_json: bool,
    *,
    html_path: Path | None = None,
) -> None:
    """Print the comparison, and write its JSON and HTML report."""
    from ragserve.eval.report import comparison_report

    html_path = html_path or reports_dir(settings) / f"{a.id}-vs-{b.id}.html"
    json_path = html_path.with_suffix(".json")
    _write(json_path, json.dumps(comparison.to_dict(), indent=2))
    _write(html_path, comparison_report(comparison, a, b))
    if as_json:
        summary = comparison.to_dict()
        del summary["pairs"]
        print(json.dumps({**summary, "json": str(json_path), "html": str(html_path)}))
        return
    _wide().print(_comparison_table(comparison, a, b))
    err.print(f"comparison: {json_path}\nreport: {html_path}", highlight=False)


def _check_gates(comparison: RunComparison, gates: Sequence[str]) -> None:
    worse = guard(partial(comparison.worse, gates))
    if not worse:
        return
    details = "; ".join(
        f"{c.metric} {c.mean_b:.4f} vs {c.mean_a:.4f} (p = {c.p_value:.3g})" for c in worse
    )
    fail(
        f"run {comparison.run_b[:12]} is significantly worse than baseline "
        f"{comparison.run_a[:12]}: {details}",
        WORSE_EXIT,
    )


def _comparison_table(comparison: RunComparison, a: EvalRunRecord, b: EvalRunRecord) -> Table:
    title = (
        f"A {a.label or a.id[:8]} ({a.id[:8]}) vs B {b.label or b.id[:8]} ({b.id[:8]}) "
        f"on {comparison.dataset}, {comparison.queries} shared queries"
    )
    table = Table("metric", "mean A", "mean B", "B − A", "95% CI", "t p", "Wilcoxon p",
                  "McNemar p", "B/tie/A", "verdict", title=title)  # fmt: skip
    for c in comparison.metrics:
        table.add_row(
            c.metric, _num(c.mean_a), _num(c.mean_b), _num(c.difference),
            f"[{_num(c.ci_low)}, {_num(c.ci_high)}]", _p(c.t_p), _p(c.wilcoxon_p),
            _p(c.mcnemar_p), f"{c.b_wins}/{c.ties}/{c.a_wins}", c.verdict,
        )  # fmt: skip
    return table


# ---- helpers -------------------------------------------------------------------------------


@contextmanager
def _experiments(settings: Settings) -> Iterator[ExperimentStore]:
    """The experiment store alone (no embedder or generator is loaded)."""
    store = guard(lambda: open_store(settings.store.model_copy(update={"url": settings.store_url})))
    try:
        yield store.experiments
    finally:
        store.close()


def _baseline(store: ExperimentStore, tenant: str, run_id: str | None) -> EvalRunRecord | None:
    return None if run_id is None else guard(lambda: store.get_eval_run(tenant, run_id))


def _wide() -> Console:
    """stdout for the wide tables: a pipe gets 160 columns rather than Rich's 80."""
    return out if out.is_terminal else Console(soft_wrap=True, width=160)


def _with_tenant(settings: Settings, tenant: str | None) -> Settings:
    return settings if tenant is None else settings.model_copy(update={"tenant": tenant})


def _run_summary(run: EvalRunRecord) -> dict[str, Any]:
    return {
        "run_id": run.id, "label": run.label, "dataset": run.dataset,
        "dataset_fingerprint": run.dataset_fingerprint, "config_hash": run.config_hash,
        "config_name": run.config_name, "created_at": run.created_at,
    }  # fmt: skip


def _headline(run: EvalRunRecord) -> str:
    keys = ("ndcg@10", "recall@100") if run.kind == "beir" else ("exact_match", "f1")
    return ", ".join(f"{k} {run.metrics[k]:.4f}" for k in keys if k in run.metrics)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", 2)


def _is_hex(text: str) -> bool:
    return all(ch in "0123456789abcdef" for ch in text.lower())


def _num(value: float) -> str:
    return "–" if value != value else f"{value:.4f}"  # NaN is the only value unequal to itself


def _p(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3g}"
