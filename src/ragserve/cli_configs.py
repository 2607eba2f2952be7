"""``ragserve config``: named, versioned pipeline configurations, the one each collection uses,
and following the re-index a switch can start (``service.experiments``).

Exit codes: 0 done, 1 operational error (a state conflict, a failed re-index), 2 bad input
(an invalid configuration, an unknown configuration).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ragserve.cli_common import DataDir, JsonOpt, TenantOpt, err, fail, guard, open_service, out
from ragserve.cli_common import progress_bar as _progress
from ragserve.cli_common import resolve_tenant as _tenant
from ragserve.errors import InputError, NotFoundError, RagError
from ragserve.experiment_service import parse_ref
from ragserve.observability import configure_logging
from ragserve.pipeline import PipelineConfig
from ragserve.service import RagService
from ragserve.store.experiments import ConfigRecord
from ragserve.types import JobRecord

config_app = typer.Typer(
    help="Named, versioned pipeline configurations, and the one each collection uses.",
    no_args_is_help=True,
)
POLL_S = 0.5

NameArg = Annotated[str, typer.Argument(help="Configuration name.")]
CollectionArg = Annotated[str, typer.Argument(help="Collection name.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Follow a re-index to its end (inline jobs run here).")
]


@config_app.command("put")
def config_put(
    name: NameArg,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Partial configuration, JSON or TOML.")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="section.field=value (JSON when it parses); repeatable."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option("--base", help="Start from NAME or NAME@VERSION, not the server's."),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="What it is for.")] = "",
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Store a new version of a configuration (the same content again: the latest version)."""
    changes = guard(lambda: _partial(file, sets or ()))
    with open_service(data_dir) as service:
        who = _tenant(service, tenant)
        latest = _latest_version(service, name, who)
        record = guard(
            lambda: service.experiments.put_config(
                name, changes, tenant=who, description=description, base=base
            )
        )
    if as_json:
        print(json.dumps(_config_json(record)))
    else:
        out.print(
            f"{record.ref}  config_hash {record.config_hash}  index_hash {record.index_hash}",
            highlight=False,
        )
    told = "unchanged: the same as the latest version" if record.version == latest else "stored"
    err.print(f"{told} ({record.ref})", highlight=False)


@config_app.command("list")
def config_list(
    as_json: JsonOpt = False, tenant: TenantOpt = None, data_dir: DataDir = None
) -> None:
    """The latest version of each configuration."""
    with open_service(data_dir) as service:
        records = guard(lambda: service.experiments.list_configs(tenant=_tenant(service, tenant)))
    _print_configs(records, as_json)


@config_app.command("versions")
def config_versions(
    name: NameArg, as_json: JsonOpt = False, tenant: TenantOpt = None, data_dir: DataDir = None
) -> None:
    """Every version of a configuration, oldest first."""
    with open_service(data_dir) as service:
        records = guard(
            lambda: service.experiments.config_versions(name, tenant=_tenant(service, tenant))
        )
    _print_configs(records, as_json)


@config_app.command("show")
def config_show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (latest when no version).")],
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Print one configuration version, resolved, as JSON."""
    name, version = guard(lambda: parse_ref(ref))
    with open_service(data_dir) as service:
        record = guard(
            lambda: service.experiments.get_config(name, version, tenant=_tenant(service, tenant))
        )
    print(json.dumps(_config_json(record)))


@config_app.command("use")
def config_use(
    collection: CollectionArg,
    ref: Annotated[
        str | None, typer.Argument(help="NAME or NAME@VERSION (latest when no version).")
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Back to the server's own configuration.")
    ] = False,
    wait: WaitOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Switch a collection's configuration.

    At once when it chunks and embeds like the current one; otherwise a background re-index
    builds the new index while queries use the current one, then switches. With --wait, a
    re-index already queued for the same change is followed rather than refused.
    """
    if (ref is None) != default:
        fail("give a configuration (NAME or NAME@VERSION) or --default, one of the two", 2)
    with open_service(data_dir) as service:
        who = _tenant(service, tenant)
        experiments = service.experiments
        job = guard(lambda: _pending_reindex(service, collection, ref, who)) if wait else None
        if job is None:
            job = guard(lambda: experiments.set_collection_config(collection, ref, tenant=who)).job
        settle_reindex(service, job, wait)
        current = guard(lambda: experiments.collection_config(collection, tenant=who))
    print_current(current)


@config_app.command("current")
def config_current(
    collection: CollectionArg,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """The configuration a collection answers with, and any re-index under way."""
    with open_service(data_dir) as service:
        current = guard(
            lambda: service.experiments.collection_config(
                collection, tenant=_tenant(service, tenant)
            )
        )
    if as_json:
        print(json.dumps(current))
    else:
        print_current(current)


# ---- helpers -------------------------------------------------------------------------------


def _partial(file: Path | None, sets: Sequence[str]) -> dict[str, Any]:
    """The file's sections with every ``--set section.field=value`` laid over them."""
    changes = _read_config(file) if file is not None else {}
    for item in sets:
        key, equals, raw = item.partition("=")
        section, dot, field = key.strip().partition(".")
        if not (equals and dot and section and field):
            raise InputError(f"--set takes section.field=value, got {item!r}")
        fields = changes.setdefault(section, {})
        if not isinstance(fields, dict):
            raise InputError(f"configuration section {section!r} must be an object")
        fields[field] = _set_value(raw)
    _check_fields(changes)
    return changes


def _read_config(path: Path) -> dict[str, Any]:
    """A partial configuration file: TOML when it ends in ``.toml``, else JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read configuration {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"configuration {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"configuration {path} must hold an object of sections")
    return data


def _set_value(raw: str) -> Any:
    """JSON when it parses (numbers, booleans, null, quoted strings), else the text itself."""

    def refuse(constant: str) -> Any:
        raise ValueError(constant)  # NaN and Infinity are names, not numbers

    try:
        return json.loads(raw, parse_constant=refuse)
    except ValueError:
        return raw


def _check_fields(changes: dict[str, Any]) -> None:
    """Refuse a field no section has (some sections would silently ignore it)."""
    known = PipelineConfig().model_dump()
    for section, fields in changes.items():
        if section in known and isinstance(fields, dict):
            for field in fields:
                if field not in known[section]:
                    names = ", ".join(sorted(known[section]))
                    raise InputError(f"unknown field {section}.{field} (known: {names})")


def _latest_version(service: RagService, name: str, tenant: str) -> int | None:
    try:
        return service.experiments.get_config(name, tenant=tenant).version
    except NotFoundError:
        return None


# ---- re-index ------------------------------------------------------------------------------


def _pending_reindex(
    service: RagService, collection: str, ref: str | None, tenant: str
) -> JobRecord | None:
    """The re-index already queued or running to switch ``collection`` to ``ref``, if any."""
    job_id = service.experiments.collection_config(collection, tenant=tenant)["reindex_job"]
    if job_id is None:
        return None
    job = service.jobs.get(job_id, tenant=tenant)
    target = None
    if ref is not None:
        record = service.experiments.get_config(*parse_ref(ref), tenant=tenant)
        target = [record.name, record.version]
    return job if job.payload.get("config") == target else None


def settle_reindex(service: RagService, job: JobRecord | None, wait: bool) -> None:
    """Hand a re-index to the job queue; with ``wait``, follow it to its end (an inline job
    runs in this process's pool, so the process stays until it has)."""
    if job is None:
        return
    print(job.id)  # stdout: a script can follow it with `ragserve jobs show`
    from ragserve.jobs import open_queue  # celery when configured: imported only if needed

    inline = service.settings.jobs.backend == "inline"
    if inline and not wait:
        err.print(
            f"re-index job {job.id} queued: a running `ragserve serve` picks it up, or run "
            "this again with --wait to re-index here",
            highlight=False,
        )
        return
    configure_logging("WARNING", "console", stream=sys.stderr)  # the jobs' logs: never on stdout
    queue = guard(lambda: open_queue(service.settings, service.jobs))
    try:
        queue.submit([job])
        if not wait:
            err.print(f"re-index job {job.id} submitted to the workers", highlight=False)
            return
        done = _follow(service, job, inline=inline)
    finally:
        queue.close()
    if done.state != "succeeded":
        fail(f"re-index job {job.id} {done.state}: {done.error or 'no reason given'}", 1)


def _follow(service: RagService, job: JobRecord, *, inline: bool) -> JobRecord:
    """Poll the job with a progress bar until it has ended; its final record. Interrupted:
    an inline job (this process runs it) is asked to stop, a worker's goes on."""
    try:
        with _progress() as progress:
            task = progress.add_task("re-indexing", total=100)
            while True:
                current = guard(partial(service.jobs.get, job.id, tenant=job.tenant))
                progress.update(task, completed=round(100 * current.progress))
                if current.terminal:
                    return current
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        if inline:
            with contextlib.suppress(RagError):
                service.jobs.cancel(job.id, tenant=job.tenant)
        fail(f"interrupted; re-index job {job.id} {'cancelled' if inline else 'goes on'}", 130)


# ---- output --------------------------------------------------------------------------------


def _config_json(record: ConfigRecord) -> dict[str, Any]:
    """The API's configuration body (``ConfigOut``)."""
    fields = {k: v for k, v in asdict(record).items() if k != "tenant"}
    return {**fields, "ref": record.ref}


def _print_configs(records: list[ConfigRecord], as_json: bool) -> None:
    if as_json:
        print(json.dumps([_config_json(r) for r in records]))
        return
    table = Table("config", "config hash", "index hash", "created", "description")
    for r in records:
        table.add_row(r.ref, r.config_hash, r.index_hash, r.created_at, escape(r.description))
    out.print(table)


def print_current(current: dict[str, Any]) -> None:
    config = current["config"] or "the server's own configuration"
    out.print(
        f"{current['collection']}: {config} (config_hash {current['config_hash']}, "
        f"index_hash {current['index_hash']})",
        highlight=False,
    )
    if current["reindex_job"]:
        out.print(f"re-index under way: job {current['reindex_job']}", highlight=False)
