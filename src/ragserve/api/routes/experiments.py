"""Pipeline configurations, a collection's configuration, experiments, feedback, and the
stored evaluation runs.

Configurations, experiments and evaluation runs are administered with the ``admin`` scope; reading a
collection's configuration needs ``read``; feedback on an answer needs ``read`` (whoever may
ask may judge the answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ragserve.api.deps import Admin, Context, Reader
from ragserve.api.errors import responses
from ragserve.api.experiment_schemas import (
    CollectionConfigOut,
    CollectionConfigPut,
    ConfigList,
    ConfigOut,
    ConfigPut,
    EvalRunList,
    EvalRunOut,
    ExperimentCreate,
    ExperimentList,
    ExperimentOut,
    FeedbackIn,
    FeedbackOut,
    PromoteIn,
    PromoteOut,
    ReindexAccepted,
)
from ragserve.api.schemas import NAME_PATTERN
from ragserve.eval.report import run_report
from ragserve.experiment_service import VariantSpec, parse_ref
from ragserve.experiments.report import render_experiment_report
from ragserve.pipeline import CONFIG_NAME_PATTERN
from ragserve.store.experiments import FeedbackKind

router = APIRouter(prefix="/v1", tags=["experiments"])
ConfigName = Annotated[str, Path(pattern=CONFIG_NAME_PATTERN, description="configuration name")]
CollectionName = Annotated[str, Path(pattern=NAME_PATTERN, description="collection name")]
ExperimentRef = Annotated[
    str, Path(pattern=CONFIG_NAME_PATTERN, description="experiment id or name")
]
AnswerId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="answer id")]
_READ = responses(401, 403, 404, 422, 429)
_WRITE = responses(400, 401, 403, 404, 409, 422, 429)


# ---- configurations ------------------------------------------------------------------------


@router.get("/configs", response_model=ConfigList, responses=_READ)
def list_configs(principal: Admin, ctx: Context) -> ConfigList:
    """The latest version of each of the tenant's pipeline configurations."""
    records = ctx.service.experiments.list_configs(tenant=principal.tenant)
    return ConfigList(configs=[ConfigOut.of(r) for r in records])


@router.put("/configs/{config}", response_model=ConfigOut, responses=_WRITE)
def put_config(config: ConfigName, body: ConfigPut, principal: Admin, ctx: Context) -> ConfigOut:
    """Store a new version of the configuration (the same content again: the latest
    version, unchanged). Fields not given come from ``base`` or the server's settings."""
    record = ctx.service.experiments.put_config(
        config,
        body.config,
        tenant=principal.tenant,
        description=body.description,
        base=body.base,
    )
    return ConfigOut.of(record)


@router.get("/configs/{config}", response_model=ConfigOut, responses=_READ)
def get_config(
    config: ConfigName,
    principal: Admin,
    ctx: Context,
    version: Annotated[int | None, Query(ge=1, le=999_999_999)] = None,
) -> ConfigOut:
    """A configuration: its latest version, or the one asked for."""
    record = ctx.service.experiments.get_config(config, version, tenant=principal.tenant)
    return ConfigOut.of(record)


@router.get("/configs/{config}/versions", response_model=ConfigList, responses=_READ)
def config_versions(config: ConfigName, principal: Admin, ctx: Context) -> ConfigList:
    """Every version of a configuration, oldest first."""
    records = ctx.service.experiments.config_versions(config, tenant=principal.tenant)
    return ConfigList(configs=[ConfigOut.of(r) for r in records])


@router.get("/collections/{name}/config", response_model=CollectionConfigOut, responses=_READ)
def get_collection_config(name: CollectionName, principal: Reader, ctx: Context) -> Any:
    """The configuration the collection answers with, resolved, and any re-index under way."""
    found = ctx.service.experiments.collection_config(name, tenant=principal.tenant)
    return CollectionConfigOut(**found)


@router.put(
    "/collections/{name}/config",
    response_model=CollectionConfigOut,
    responses={202: {"model": ReindexAccepted}, **_WRITE},
)
def put_collection_config(
    name: CollectionName, body: CollectionConfigPut, principal: Admin, ctx: Context
) -> Any:
    """Switch the collection to a configuration. When it chunks or embeds like the current
    one: at once (200). Otherwise 202: a background job builds the new index while queries
    keep using the old one, then switches both atomically."""
    experiments = ctx.service.experiments
    change = experiments.set_collection_config(name, body.config, tenant=principal.tenant)
    if change.job is not None:
        ctx.metrics.jobs_submitted.labels("reindex").inc()
        ctx.queue.submit([change.job])
        accepted = ReindexAccepted(
            job_id=change.job.id,
            status_url=f"/v1/jobs/{change.job.id}",
            message="re-indexing; queries use the current index until the job switches",
        )
        return JSONResponse(accepted.model_dump(), status_code=202)
    return CollectionConfigOut(**experiments.collection_config(name, tenant=principal.tenant))


# ---- experiments ---------------------------------------------------------------------------


@router.post("/experiments", response_model=ExperimentOut, status_code=201, responses=_WRITE)
def create_experiment(body: ExperimentCreate, principal: Admin, ctx: Context) -> ExperimentOut:
    """A draft experiment over the collection: two or more variants, each a configuration
    (pinned to its version now) with a traffic share; shares sum to 1."""
    variants = []
    for v in body.variants:
        config_name, config_version = parse_ref(v.config)
        variants.append(VariantSpec(v.name, config_name, v.share, config_version))
    record = ctx.service.experiments.create_experiment(
        body.name,
        body.collection,
        variants,
        tenant=principal.tenant,
        subject=body.subject,
        description=body.description,
    )
    return ExperimentOut.of(record)


@router.get("/experiments", response_model=ExperimentList, responses=_READ)
def list_experiments(
    principal: Admin,
    ctx: Context,
    collection: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> ExperimentList:
    """The tenant's experiments, newest first."""
    records = ctx.service.experiments.list_experiments(
        tenant=principal.tenant, collection=collection
    )
    return ExperimentList(experiments=[ExperimentOut.of(r) for r in records])


@router.get("/experiments/{experiment}", response_model=ExperimentOut, responses=_READ)
def get_experiment(experiment: ExperimentRef, principal: Admin, ctx: Context) -> ExperimentOut:
    record = ctx.service.experiments.get_experiment(experiment, tenant=principal.tenant)
    return ExperimentOut.of(record)


@router.post("/experiments/{experiment}/promote", response_model=PromoteOut, responses=_WRITE)
def promote_experiment(
    experiment: ExperimentRef, body: PromoteIn, principal: Admin, ctx: Context
) -> PromoteOut:
    """End the experiment with a winner: its configuration becomes the collection's, and the
    next answers use it."""
    promoted, change = ctx.service.experiments.promote(
        experiment, body.variant, tenant=principal.tenant
    )
    if change.job is not None:
        ctx.queue.submit([change.job])
    config = change.collection.config_name
    return PromoteOut(
        experiment=ExperimentOut.of(promoted),
        collection_config=(
            f"{config}@{change.collection.config_version}" if config is not None else None
        ),
        reindex_job=change.job.id if change.job is not None else None,
    )


def _transition(action: str) -> Callable[..., ExperimentOut]:
    def change(experiment: ExperimentRef, principal: Admin, ctx: Context) -> ExperimentOut:
        record = ctx.service.experiments.transition(experiment, action, tenant=principal.tenant)
        return ExperimentOut.of(record)

    change.__name__ = f"{action}_experiment"
    return change


for _action, _doc in (
    ("start", "Start a draft experiment: the collection's questions are split between its "
     "variants (409 when the collection runs another experiment)."),
    ("pause", "Pause a running experiment: the collection's own configuration answers."),
    ("resume", "Resume a paused experiment; subjects keep their variants."),
    ("stop", "Stop a running or paused experiment for good (it can still be promoted)."),
):  # fmt: skip
    router.post(
        f"/experiments/{{experiment}}/{_action}",
        response_model=ExperimentOut,
        responses=_WRITE,
        description=_doc,
        name=f"{_action}_experiment",
    )(_transition(_action))


@router.get("/experiments/{experiment}/analysis", responses=_READ)
def experiment_analysis(
    experiment: ExperimentRef, principal: Admin, ctx: Context
) -> dict[str, Any]:
    """Per variant: count, mean, std, min/max, percentiles and a confidence interval of each
    metric; each variant against the first: difference with its interval, p-value, minimum
    detectable effect and verdict; and a sample-ratio-mismatch check."""
    analysis = ctx.service.experiments.analysis(experiment, tenant=principal.tenant)
    return analysis.to_dict()


@router.get(
    "/experiments/{experiment}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}, **_READ},
)
def experiment_report(experiment: ExperimentRef, principal: Admin, ctx: Context) -> HTMLResponse:
    """The analysis as a self-contained HTML page with plots."""
    experiments = ctx.service.experiments
    record = experiments.get_experiment(experiment, tenant=principal.tenant)
    analysis = experiments.analysis(record.id, tenant=principal.tenant)
    return HTMLResponse(render_experiment_report(analysis, record))


# ---- feedback ------------------------------------------------------------------------------


@router.post(
    "/answers/{answer_id}/feedback",
    response_model=FeedbackOut,
    status_code=201,
    responses=_WRITE,
)
def answer_feedback(
    answer_id: AnswerId, body: FeedbackIn, principal: Reader, ctx: Context
) -> FeedbackOut:
    """Thumbs up/down or a 1-5 score on an answer (posting again replaces it)."""
    kind: FeedbackKind = "thumbs" if body.thumbs is not None else "score"
    value = int(body.thumbs == "up") if body.thumbs is not None else int(body.score or 0)
    saved, experiment, variant = ctx.service.experiments.feedback(
        answer_id,
        kind,
        value,
        tenant=principal.tenant,
        comment=body.comment,
    )
    if experiment is not None and variant is not None:
        ctx.metrics.variant_feedback.labels(experiment, variant, kind, str(value)).inc()
    return FeedbackOut.of(saved)


# ---- evaluation runs -----------------------------------------------------------------------

RunId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{6,32}$", description="run id, or a unique prefix of it")
]


@router.get("/eval/runs", response_model=EvalRunList, responses=_READ)
def list_eval_runs(
    principal: Admin,
    ctx: Context,
    dataset_fingerprint: Annotated[str | None, Query(pattern=r"^[0-9a-f]{1,64}$")] = None,
    config_hash: Annotated[str | None, Query(pattern=r"^[0-9a-f]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EvalRunList:
    """Stored evaluation runs (``ragserve eval``), newest first, without per-query scores."""
    runs = ctx.service.store.experiments.list_eval_runs(
        principal.tenant,
        dataset_fingerprint=dataset_fingerprint,
        config_hash=config_hash,
        limit=limit,
    )
    return EvalRunList(runs=[EvalRunOut.of(run) for run in runs])


@router.get("/eval/runs/{run_id}", response_model=EvalRunOut, responses=_READ)
def get_eval_run(
    run_id: RunId, principal: Admin, ctx: Context, per_query: bool = False
) -> EvalRunOut:
    """One stored run: configuration, metrics, timing, and with ``per_query=true`` every
    query's scores."""
    run = ctx.service.store.experiments.get_eval_run(principal.tenant, run_id)
    return EvalRunOut.of(run, per_query=per_query)


@router.get(
    "/eval/runs/{run_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}, **_READ},
)
def eval_run_report(run_id: RunId, principal: Admin, ctx: Context) -> HTMLResponse:
    """The run as a self-contained HTML page with plots of its metric distributions."""
    run = ctx.service.store.experiments.get_eval_run(principal.tenant, run_id)
    return HTMLResponse(run_report(run))
