"""``ragserve experiment``: A/B experiments between pipeline configurations on live traffic,
their analysis, and promoting a winner (``service.experiments``).

Exit codes: 0 done, 1 operational error (a state conflict, a failed re-index), 2 bad input
(an invalid variant, an unknown configuration or experiment).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ragserve.cli_common import DataDir, JsonOpt, TenantOpt, err, fail, guard, open_service, out
from ragserve.cli_common import resolve_tenant as _tenant
from ragserve.cli_configs import WaitOpt, print_current, settle_reindex
from ragserve.errors import InputError
from ragserve.experiment_service import VariantSpec, parse_ref
from ragserve.experiments.analysis import ExperimentAnalysis, MetricComparison, VariantComparison
from ragserve.store.experiments import ExperimentRecord, SubjectKind

experiment_app = typer.Typer(
    help="A/B experiments between pipeline configurations on live traffic.", no_args_is_help=True
)
PIPE_WIDTH = 120  # rich assumes 80 columns off a terminal: too narrow for the comparisons

ExperimentArg = Annotated[str, typer.Argument(help="Experiment id or name.")]


@experiment_app.command("create")
def experiment_create(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name.")],
    variants: Annotated[
        list[str],
        typer.Option(
            "--variant", "-v", help="NAME=CONFIG:SHARE (CONFIG@VERSION pins one); two or more."
        ),
    ],
    subject: Annotated[
        str, typer.Option("--subject", help="Assign by user (else API key), or by key.")
    ] = "user",
    description: Annotated[str, typer.Option("--description", help="What it tests.")] = "",
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Create a draft experiment; the first variant is the control. Shares sum to 1."""
    kind = _subject(subject)
    specs = guard(lambda: [_variant_spec(text) for text in variants])
    with open_service(data_dir) as service:
        record = guard(
            lambda: service.experiments.create_experiment(
                name,
                collection,
                specs,
                tenant=_tenant(service, tenant),
                subject=kind,
                description=description,
            )
        )
    _print_experiment(record, as_json)


def _transition_command(action: str, help_text: str) -> None:
    def command(
        experiment: ExperimentArg,
        as_json: JsonOpt = False,
        tenant: TenantOpt = None,
        data_dir: DataDir = None,
    ) -> None:
        with open_service(data_dir) as service:
            record = guard(
                lambda: service.experiments.transition(
                    experiment, action, tenant=_tenant(service, tenant)
                )
            )
        _print_experiment(record, as_json)

    experiment_app.command(action, help=help_text)(command)


_transition_command("start", "Start a draft experiment: subjects' queries get their variant.")
_transition_command("pause", "Pause a running experiment: the collection's own config answers.")
_transition_command("resume", "Resume a paused experiment (assignments are unchanged).")
_transition_command("stop", "Stop an experiment for good (it can still be promoted).")


@experiment_app.command("list")
def experiment_list(
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """The experiments, newest first."""
    with open_service(data_dir) as service:
        records = guard(
            lambda: service.experiments.list_experiments(
                tenant=_tenant(service, tenant), collection=collection
            )
        )
    if as_json:
        print(json.dumps([_experiment_json(r) for r in records]))
        return
    table = Table("id", "name", "collection", "state", "variants", "winner", "created")
    for r in records:
        table.add_row(
            r.id, r.name, r.collection, r.state, _variants_text(r), r.winner or "", r.created_at
        )
    out.print(table)


@experiment_app.command("status")
def experiment_status(
    experiment: ExperimentArg,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """State, variants, answers per variant and each variant's one-line summary."""
    record, analysis = _analysed(experiment, tenant, data_dir)
    if as_json:
        status = {
            "experiment": _experiment_json(record),
            "counts": {v.name: v.count for v in analysis.variants},
            "sample_ratio": analysis.sample_ratio.status,
            "summaries": [c.summary for c in analysis.comparisons],
        }
        print(json.dumps(status))
        return
    _print_overview(analysis, record)
    for comparison in analysis.comparisons:
        out.print(comparison.summary, highlight=False)


@experiment_app.command("analyze")
def experiment_analyze(
    experiment: ExperimentArg,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the HTML report with plots here.")
    ] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Each variant against the control, metric by metric: difference with its interval,
    p-value, minimum detectable effect and verdict."""
    record, analysis = _analysed(experiment, tenant, data_dir)
    if report is not None:
        from ragserve.experiments.report import render_experiment_report  # matplotlib: slow

        _write(report, render_experiment_report(analysis, record))
        err.print(f"report: {report}", highlight=False)
    if as_json:
        print(json.dumps(analysis.to_dict()))
        return
    _print_overview(analysis, record)
    for comparison in analysis.comparisons:
        _wide().print(_comparison_table(comparison))
        out.print(comparison.summary, highlight=False)


@experiment_app.command("promote")
def experiment_promote(
    experiment: ExperimentArg,
    variant: Annotated[str, typer.Argument(help="The winning variant.")],
    wait: WaitOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """End the experiment with a winner: its configuration becomes the collection's."""
    with open_service(data_dir) as service:
        who = _tenant(service, tenant)
        promoted, change = guard(
            lambda: service.experiments.promote(experiment, variant, tenant=who)
        )
        settle_reindex(service, change.job, wait)
        current = guard(
            lambda: service.experiments.collection_config(promoted.collection, tenant=who)
        )
    err.print(f"experiment {promoted.name} promoted {variant}", highlight=False)
    print_current(current)


# ---- helpers -------------------------------------------------------------------------------


def _subject(text: str) -> SubjectKind:
    if text not in ("user", "key"):
        fail(f"unknown subject {text!r}; use user or key", 2)
    return "user" if text == "user" else "key"


def _variant_spec(text: str) -> VariantSpec:
    """``NAME=CONFIG:SHARE`` or ``NAME=CONFIG@VERSION:SHARE``."""
    name, equals, rest = text.partition("=")
    ref, colon, share = rest.rpartition(":")
    if not (equals and colon and name and ref):
        raise InputError(
            f"--variant takes NAME=CONFIG:SHARE or NAME=CONFIG@VERSION:SHARE, got {text!r}"
        )
    try:
        value = float(share)
    except ValueError:
        raise InputError(f"variant {name!r}: the share must be a number, got {share!r}") from None
    config_name, version = parse_ref(ref)
    return VariantSpec(name, config_name, value, version)


def _analysed(
    experiment: str, tenant: str | None, data_dir: Path | None
) -> tuple[ExperimentRecord, ExperimentAnalysis]:
    with open_service(data_dir) as service:
        who = _tenant(service, tenant)
        record = guard(lambda: service.experiments.get_experiment(experiment, tenant=who))
        return record, guard(lambda: service.experiments.analysis(record.id, tenant=who))


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", 2)


# ---- output --------------------------------------------------------------------------------


def _experiment_json(record: ExperimentRecord) -> dict[str, Any]:
    """The API's experiment body (``ExperimentOut``)."""
    fields = {k: v for k, v in asdict(record).items() if k != "tenant"}
    variants = [
        {"name": v.name, "config": f"{v.config_name}@{v.config_version}", "share": v.share}
        for v in record.variants
    ]
    return {**fields, "variants": variants}


def _print_experiment(record: ExperimentRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_experiment_json(record)))
        return
    winner = f", winner {record.winner}" if record.winner else ""
    out.print(
        f"{record.id}  {record.name}  {record.state}{winner}  on {record.collection}: "
        f"{_variants_text(record)}",
        highlight=False,
    )


def _variants_text(record: ExperimentRecord) -> str:
    return ", ".join(
        f"{v.name}={v.config_name}@{v.config_version} ({v.share:.0%})" for v in record.variants
    )


def _print_overview(analysis: ExperimentAnalysis, record: ExperimentRecord) -> None:
    winner = f", winner {record.winner}" if record.winner else ""
    out.print(
        f"experiment {record.name} ({record.id}) on {record.collection}: {record.state}{winner}; "
        f"{analysis.total} answers",
        highlight=False,
    )
    table = Table("variant", "config", "share", "answers", "subjects", "observed share")
    for v in analysis.variants:
        observed = "–" if v.observed_share is None else f"{v.observed_share:.1%}"
        table.add_row(v.name, v.config, f"{v.share:.0%}", str(v.count), str(v.subjects), observed)
    out.print(table)
    srm = analysis.sample_ratio
    p = "" if srm.p_value is None else f", p={srm.p_value:.3g}"
    out.print(f"sample ratio ({srm.unit}): {srm.status}{p}", highlight=False)


def _wide() -> Console:
    """``out`` on a terminal; piped, a console wider than the 80 columns rich assumes."""
    return out if out.is_terminal else Console(width=PIPE_WIDTH, soft_wrap=True)


def _comparison_table(c: VariantComparison) -> Table:
    table = Table(title=f"{c.variant} against the control, {c.control}")
    table.add_column("metric", no_wrap=True)
    for heading in (c.control, c.variant, "difference (CI)", "p", "MDE", "verdict"):
        table.add_column(heading)
    verdicts = {
        "a_better": f"[red]{c.control} better[/]",
        "b_better": f"[green]{c.variant} better[/]",
    }
    for name, m in c.metrics.items():
        table.add_row(
            name,
            _value(m.kind, m.control_value),
            _value(m.kind, m.variant_value),
            _difference(m),
            _p_value(m.p_value),
            _amount(m.kind, m.minimum_detectable_effect),
            verdicts.get(m.verdict, m.verdict.replace("_", " ")),
        )
    return table


def _p_value(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def _value(kind: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.1%}" if kind == "rate" else f"{value:.3g}"


def _difference(m: MetricComparison) -> str:
    if not math.isfinite(m.difference):
        return "–"
    low, high = (_amount(m.kind, x, signed=True, unit=False) for x in (m.ci_low, m.ci_high))
    return f"{_amount(m.kind, m.difference, signed=True)} ({low}, {high})"


def _amount(kind: str, value: float, *, signed: bool = False, unit: bool = True) -> str:
    """Rates in percentage points (pp), means as they are."""
    if not math.isfinite(value):
        return "–"
    sign = "+" if signed else ""
    if kind == "rate":
        return f"{100 * value:{sign}.1f}" + ("pp" if unit else "")
    return f"{value:{sign}.3g}"
