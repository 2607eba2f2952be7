"""The ``ragserve`` command line: serve, keys, ingest, ask, search, evaluate.

Settings come from ``RAGSERVE_*`` variables and ``ragserve.toml``; ``--data-dir`` overrides
where the embedded store lives. Every failure prints one line to stderr and exits non-zero:
1 for operational errors, 2 for bad input.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from ragserve.cli_common import DataDir, JsonOpt, ModeOpt, TenantOpt, err, out
from ragserve.cli_common import fail as _fail
from ragserve.cli_common import guard as _guard
from ragserve.cli_common import load_settings as _settings
from ragserve.cli_common import open_service as _service
from ragserve.cli_common import parse_mode as _mode
from ragserve.cli_common import progress_bar as _progress
from ragserve.cli_configs import config_app
from ragserve.cli_eval import eval_app
from ragserve.cli_experiments import experiment_app
from ragserve.cli_users import users_app
from ragserve.config import ServerSettings, Settings
from ragserve.errors import MissingDependencyError
from ragserve.ingestion import expand_paths
from ragserve.observability import configure_logging
from ragserve.security.keys import ApiKeys, parse_scopes
from ragserve.server import run_server
from ragserve.service import RagService
from ragserve.store import open_store
from ragserve.types import JOB_STATES, Answer, Hit, IngestOutcome, JobRecord

app = typer.Typer(
    help="ragserve: grounded answers with citations over your documents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(eval_app, name="eval")
keys_app = typer.Typer(help="Create, list and revoke API keys (shown once, stored hashed).")
app.add_typer(keys_app, name="keys")
jobs_app = typer.Typer(help="List, show and cancel background jobs.")
app.add_typer(jobs_app, name="jobs")
app.add_typer(config_app, name="config")
app.add_typer(experiment_app, name="experiment")
app.add_typer(users_app, name="users")
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]


def main() -> None:
    """Console-script entry point. An unexpected error is one line, not a traceback, unless
    ``RAGSERVE_DEBUG=1``. Logs go to stderr, warnings and worse, so stdout holds only the
    command's output (``serve`` and ``worker`` log as the server settings say)."""
    configure_logging("WARNING", "console", stream=sys.stderr)
    try:
        app()
    except Exception as exc:
        if os.environ.get("RAGSERVE_DEBUG") == "1":
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
            "(set RAGSERVE_DEBUG=1 for the traceback, and please report it)",
            highlight=False,
        )
        sys.exit(1)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    collection: CollectionOpt = "default",
    password: Annotated[
        str | None, typer.Option("--password", help="Password of encrypted PDFs.")
    ] = None,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Ingest files and folders (PDF, Markdown, HTML, text) into a collection."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _fail(f"no such file or folder: {', '.join(missing)}", 2)
    files = expand_paths(paths)
    if not files:
        _fail("no supported files found (PDF, Markdown, HTML, text)", 2)
    settings = _settings(data_dir)
    if settings.jobs.backend != "inline":  # workers ingest; follow their jobs
        outcomes = _ingest_as_jobs(settings, collection, files, tenant, password)
        _print_ingest_summary(outcomes)
        if any(o.status == "failed" for o in outcomes):
            raise typer.Exit(1)
        return
    with _service(data_dir) as service, _progress() as progress:
        task = progress.add_task("ingesting", total=len(files))

        def advance(outcome: IngestOutcome) -> None:
            progress.advance(task)

        outcomes = _guard(
            lambda: service.ingest_files(
                collection, files, tenant=tenant, password=password, on_progress=advance
            )
        )
    _print_ingest_summary(outcomes)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


def _ingest_as_jobs(
    settings: Settings,
    collection: str,
    files: list[Path],
    tenant: str | None,
    password: str | None,
) -> list[IngestOutcome]:
    """Submit one job per file to the workers and show a progress bar until all have ended."""
    from ragserve.jobs import open_queue

    with _service(settings.data_dir) as service:
        jobs = _guard(
            lambda: service.jobs.submit_files(collection, files, tenant=tenant, password=password)
        )
        queue = _guard(lambda: open_queue(settings, service.jobs))
        try:
            queue.submit(jobs)
        finally:
            queue.close()
        with _progress() as progress:
            task = progress.add_task("ingesting (workers)", total=len(jobs))
            done = _follow_jobs(service, jobs, lambda n: progress.update(task, completed=n))
    return [_job_outcome(job) for job in done]


def _follow_jobs(
    service: RagService, jobs: list[JobRecord], on_done: Callable[[int], None]
) -> list[JobRecord]:
    """Poll the jobs' states until every one has ended; their final records, in order."""
    tenant, batch_id = jobs[0].tenant, jobs[0].batch_id
    while True:
        if batch_id is None:
            current = [_guard(partial(service.jobs.get, job.id, tenant=tenant)) for job in jobs]
        else:
            current = _batch(service, tenant, batch_id)
        finished = sum(job.terminal for job in current)
        on_done(finished)
        if finished == len(current):
            return current
        time.sleep(0.5)


def _batch(service: RagService, tenant: str, batch_id: str) -> list[JobRecord]:
    found: list[JobRecord] = []
    while page := _guard(
        lambda: service.jobs.list_jobs(
            tenant=tenant, batch_id=batch_id, limit=1000, offset=len(found)
        )
    ):
        found.extend(page)
    return found


def _job_outcome(job: JobRecord) -> IngestOutcome:
    result = job.result or {}
    source = str(result.get("source") or job.payload.get("source", ""))
    if job.state != "succeeded":
        return IngestOutcome(source, "failed", error=job.error or job.state)
    return IngestOutcome(
        source,
        result["status"],
        result.get("document_id"),
        int(result.get("chunks", 0)),
        warnings=tuple(result.get("warnings", ())),
    )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    collection: CollectionOpt = "default",
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50)] = None,
    mode: ModeOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Answer a question from a collection, with the cited sources."""
    with _service(data_dir) as service:
        answer = _guard(
            lambda: service.query(
                collection, question, tenant=tenant, top_k=top_k, mode=_mode(mode)
            )
        )
    if as_json:
        out.print_json(json.dumps(_answer_json(answer)))
        return
    out.print(answer.text, highlight=False)
    if answer.abstained:
        return
    # Cited sources; when the model cited none, what it was given, so the user can check.
    shown, heading = (answer.cited, "Sources") if answer.cited else (answer.sources, "Retrieved")
    if shown:
        out.print()
        out.print(f"[bold]{heading}[/]")
        for source in shown:
            hit = source.hit
            out.print(
                f"  [{source.number}] {hit.document_source} — page {hit.chunk.page}",
                highlight=False,
                markup=False,
            )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt = "default",
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    mode: ModeOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Retrieve the best-matching passages (no answer generation)."""
    with _service(data_dir) as service:
        hits = _guard(
            lambda: service.search(collection, query, tenant=tenant, top_k=top_k, mode=_mode(mode))
        )
    if as_json:
        out.print_json(json.dumps([_hit_json(h) for h in hits]))
        return
    table = Table("#", "score", "source", "page", "text")
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.chunk.text.split())[:120]
        table.add_row(
            str(rank),
            f"{hit.score:.3f}",
            Path(hit.document_source).name,
            str(hit.chunk.page),
            snippet,
        )
    out.print(table)


@app.command()
def collections(tenant: TenantOpt = None, data_dir: DataDir = None) -> None:
    """List collections with their document and chunk counts."""
    with _service(data_dir) as service:
        infos = _guard(lambda: service.list_collections(tenant=tenant))
    table = Table("collection", "documents", "chunks", "version")
    for info in infos:
        table.add_row(info.name, str(info.document_count), str(info.chunk_count), str(info.version))
    out.print(table)


@app.command()
def worker(
    queues: Annotated[
        str | None,
        typer.Option("--queues", "-Q", help="Comma-separated queues (default: ingest and query)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=64, help="Worker processes.")
    ] = 1,
    pool: Annotated[
        str, typer.Option("--pool", help="Celery pool: prefork, threads or solo.")
    ] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel", help="DEBUG, INFO, WARNING.")] = "INFO",
    data_dir: DataDir = None,
) -> None:
    """Run a Celery worker for ingestion and query jobs (jobs.backend = celery)."""
    if pool not in ("prefork", "threads", "solo"):
        _fail(f"unknown pool {pool!r}; use prefork, threads or solo", 2)
    settings = _settings(data_dir)
    configure_logging(settings.server.log_level, settings.server.log_format)
    names = [q.strip() for q in (queues or "").split(",") if q.strip()] or [
        settings.jobs.ingest_queue,
        settings.jobs.query_queue,
    ]
    try:
        from ragserve.worker import run_worker
    except ImportError as exc:
        _fail(str(MissingDependencyError("celery", "celery")) + f" ({exc})", 1)
    run_worker(settings, queues=names, concurrency=concurrency, pool=pool, loglevel=loglevel)


@jobs_app.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option("--state", help="queued, running, ...")] = None,
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """List jobs, oldest first."""
    if state is not None and state not in JOB_STATES:
        _fail(f"unknown state {state!r}; use one of {', '.join(JOB_STATES)}", 2)
    with _service(data_dir) as service:
        jobs = _guard(
            lambda: service.jobs.list_jobs(
                tenant=tenant, state=state,  # checked above collection=collection,
                limit=limit,
            )
        )  # fmt: skip
    if as_json:
        print(json.dumps([asdict(job) for job in jobs]))
        return
    table = Table("job", "kind", "collection", "state", "progress", "attempts", "error")
    for job in jobs:
        table.add_row(
            job.id, job.kind, job.collection, job.state, f"{job.progress:.0%}",
            f"{job.attempts}/{job.max_attempts}", job.error or "",
        )  # fmt: skip
    out.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Print one job as JSON."""
    with _service(data_dir) as service:
        job = _guard(lambda: service.jobs.get(job_id, tenant=tenant))
    print(json.dumps(asdict(job)))


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    with _service(data_dir) as service:
        job = _guard(lambda: service.jobs.cancel(job_id, tenant=tenant))
    told = "cancelled" if job.state == "cancelled" else "asked to stop (it is running)"
    err.print(f"job {job.id} {told}", highlight=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes.")] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Local development only: no API keys (loopback).")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP API (loopback by default; see /docs for the OpenAPI schema)."""
    settings = _settings(data_dir)
    overrides = {"host": host, "port": port, "workers": workers, "auth": False if no_auth else None}
    try:
        server = ServerSettings.model_validate(
            settings.server.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        )
    except ValidationError as exc:
        _fail(f"invalid server settings: {exc.errors()[0]['msg']}", 2)
    settings = settings.model_copy(update={"server": server})
    _guard(lambda: run_server(settings))


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", help="Port of the web UI.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    api_url: Annotated[
        str | None,
        typer.Option("--api-url", help="The API (default: RAGSERVE_UI__API_URL or :8000)."),
    ] = None,
) -> None:
    """Run the web UI (Streamlit); it talks to a ragserve API over HTTP only."""
    try:
        from ragserve.ui.app import main as run_ui
    except ImportError:
        _fail("the web UI needs the 'ui' extra: pip install 'ragserve[ui]'", 1)
    if api_url:
        os.environ["RAGSERVE_UI__API_URL"] = api_url
    sys.argv = [
        "ragserve-ui",
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    run_ui()


@app.command()
def up(
    host: Annotated[str, typer.Option("--host", help="Address both bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the API.")] = 8000,
    ui_port: Annotated[int, typer.Option("--ui-port", help="Port of the web UI.")] = 8501,
    data_dir: DataDir = None,
) -> None:
    """Run the API and the web UI together, and print the URL to open (Ctrl-C stops both)."""
    from ragserve.launcher import Endpoints, LaunchError, run

    endpoints = Endpoints(host, port, ui_port)
    try:
        code = run(endpoints, data_dir, announce=lambda text: out.print(text, highlight=False))
    except LaunchError as exc:
        _fail(str(exc), 1)
    raise typer.Exit(code)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts for.")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated: read,write,admin.")],
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create a key and print it once (stdout); only its hash is stored."""
    with _accounts(data_dir) as keys:
        key, record = _guard(lambda: keys.create(tenant, parse_scopes(scopes), name=name))
    print(key)
    err.print(
        f"created key {record.key_id} for tenant {record.tenant!r} with scopes "
        f"{','.join(record.scopes)}; it is shown only this once",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(tenant: TenantOpt = None, as_json: JsonOpt = False, data_dir: DataDir = None) -> None:
    """List keys (ids, tenants, scopes; never the keys)."""
    with _accounts(data_dir) as keys:
        records = _guard(lambda: keys.list(tenant))
    if as_json:
        print(json.dumps([asdict(r) | {"key_hash": None} for r in records]))
        return
    table = Table("key id", "tenant", "scopes", "name", "created", "revoked")
    for r in records:
        table.add_row(
            r.key_id, r.tenant, ",".join(r.scopes), r.name, r.created_at, r.revoked_at or ""
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by `keys list`.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key; it fails from its next request on."""
    with _accounts(data_dir) as keys:
        record = _guard(lambda: keys.revoke(key_id))
    err.print(f"revoked key {record.key_id} of tenant {record.tenant!r}", highlight=False)


@contextmanager
def _accounts(data_dir: Path | None) -> Iterator[ApiKeys]:
    settings = _settings(data_dir)
    store = _guard(
        lambda: open_store(settings.store.model_copy(update={"url": settings.store_url}))
    )
    try:
        yield ApiKeys(store.accounts)
    finally:
        store.close()


def _print_ingest_summary(outcomes: list[IngestOutcome]) -> None:
    counts = {
        s: sum(o.status == s for o in outcomes)
        for s in ("added", "unchanged", "replaced", "failed")
    }
    chunks = sum(o.chunks for o in outcomes if o.status in ("added", "replaced"))
    out.print(
        f"added {counts['added']}, unchanged {counts['unchanged']}, "
        f"replaced {counts['replaced']}, failed {counts['failed']} "
        f"({chunks} chunks written)",
        highlight=False,
    )
    for outcome in outcomes:
        for warning in outcome.warnings:
            err.print(f"[yellow]warning:[/] {outcome.source}: {warning}", highlight=False)
        if outcome.status == "failed":
            err.print(f"[bold red]failed:[/] {outcome.source}: {outcome.error}", highlight=False)


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "chunk_id": hit.chunk.id,
        "document_id": hit.chunk.document_id,
        "source": hit.document_source,
        "title": hit.document_title,
        "page": hit.chunk.page,
        "start": hit.chunk.start,
        "end": hit.chunk.end,
        "score": hit.score,
        "text": hit.chunk.text,
    }


def _answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.text,
        "abstained": answer.abstained,
        "sources": [{"number": s.number, **_hit_json(s.hit)} for s in answer.sources],
        "cited": [s.number for s in answer.cited],
        "timings_ms": answer.timings_ms,
        "usage": asdict(answer.usage),
        "model": answer.model,
    }


if __name__ == "__main__":
    main()
