"""The ``ragserve`` command line: serve, keys, ingest, ask, search, evaluate.

Settings come from ``RAGSERVE_*`` variables and ``ragserve.toml``; ``--data-dir`` overrides
where the embedded store lives. Every failure prints one line to stderr and exits non-zero:
1 for operational errors, 2 for bad input.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragserve.config import ServerSettings, Settings
from ragserve.errors import InputError, NotFoundError, RagError
from ragserve.ingestion import expand_paths
from ragserve.security.keys import ApiKeys, parse_scopes
from ragserve.server import run_server
from ragserve.service import RagService, build_service
from ragserve.store import open_store
from ragserve.types import Answer, Hit, IngestOutcome

app = typer.Typer(
    help="ragserve: grounded answers with citations over your documents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(help="Evaluate retrieval and answers on standard datasets.")
app.add_typer(eval_app, name="eval")
keys_app = typer.Typer(help="Create, list and revoke API keys (shown once, stored hashed).")
app.add_typer(keys_app, name="keys")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

Mode = Literal["bm25", "dense", "hybrid"]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Where the embedded store lives.")]
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant (default: settings).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="Retrieval mode: bm25, dense or hybrid.")
]


def main() -> None:
    """Console-script entry point. An unexpected error is one line, not a traceback, unless
    ``RAGSERVE_DEBUG=1``."""
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


@contextmanager
def _service(data_dir: Path | None, **overrides: Any) -> Iterator[RagService]:
    service = _guard(lambda: build_service(_settings(data_dir, **overrides)))
    try:
        yield service
    finally:
        service.close()


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    try:
        settings = Settings()
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": data_dir})
        for section, values in overrides.items():
            current = getattr(settings, section)
            settings = settings.model_copy(update={section: current.model_copy(update=values)})
        return settings
    except ValidationError as exc:
        _fail(f"invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", 2)


def _guard(action: Callable[[], T]) -> T:
    """Run ``action``, turning ragserve errors into one line on stderr and an exit code."""
    try:
        return action()
    except (InputError, NotFoundError) as exc:
        _fail(str(exc), 2)
    except RagError as exc:
        _fail(str(exc), 1)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _mode(mode: str | None) -> Mode | None:
    if mode is None:
        return None
    if mode not in ("bm25", "dense", "hybrid"):
        _fail(f"unknown mode {mode!r}; use bm25, dense or hybrid", 2)
    return mode  # type: ignore[return-value]


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


@eval_app.command("beir")
def eval_beir(
    directory: Annotated[Path, typer.Argument(help="A BEIR dataset folder.")],
    split: Annotated[str, typer.Option("--split", help="Qrels split: test, train, dev.")] = "test",
    mode: ModeOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Retrieval quality on a BEIR dataset: nDCG@10, Recall@100, MRR@10, P/R/F1@k."""
    from ragserve.eval.beir import load_beir
    from ragserve.eval.runner import evaluate_beir

    dataset = _guard(lambda: load_beir(directory, split))
    with _service(data_dir, retrieve={"candidates": 300}) as service, _progress(as_json) as bar:
        task = bar.add_task("indexing corpus", total=len(dataset.corpus))
        metrics = _guard(
            lambda: evaluate_beir(
                service,
                dataset,
                mode=_mode(mode) or service.settings.retrieve.mode,
                on_progress=lambda done, total: bar.update(task, completed=done),
            )
        )
    report: dict[str, Any] = {"dataset": directory.name, "split": split}
    report["mode"] = mode or service.settings.retrieve.mode
    _print_metrics({**report, **metrics}, as_json)


@eval_app.command("squad")
def eval_squad(
    path: Annotated[Path, typer.Argument(help="A SQuAD v2 JSON file.")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N questions.")] = None,
    mode: ModeOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Answer quality on SQuAD v2: exact match, token F1, abstention on unanswerable."""
    from ragserve.eval.runner import evaluate_squad
    from ragserve.eval.squad import load_squad

    dataset = _guard(lambda: load_squad(path))
    with _service(data_dir) as service, _progress(as_json) as bar:
        total = limit or len(dataset.questions)
        task = bar.add_task("answering", total=min(total, len(dataset.questions)))
        metrics = _guard(
            lambda: evaluate_squad(
                service,
                dataset,
                limit=limit,
                mode=_mode(mode),
                on_progress=lambda done, _: bar.update(task, completed=done),
            )
        )
    report: dict[str, Any] = {"dataset": path.name, "generator": service.generator.model_id}
    _print_metrics({**report, **metrics}, as_json)


@contextmanager
def _progress(quiet: bool = False) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )
    with progress:
        yield progress


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


def _print_metrics(metrics: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics))
        return
    table = Table("metric", "value")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)


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
