"""What every ``ragserve`` command group shares: consoles, settings, the service, error
handling (one line on stderr and an exit code), progress bars and common options."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragserve.config import Settings
from ragserve.errors import InputError, NotFoundError, RagError
from ragserve.service import RagService, build_service

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

Mode = Literal["bm25", "dense", "hybrid"]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Where the embedded store lives.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant (default: settings).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="Retrieval mode: bm25, dense or hybrid.")
]


@contextmanager
def open_service(data_dir: Path | None, **overrides: Any) -> Iterator[RagService]:
    """The service on the command's settings, closed on the way out."""
    service = guard(lambda: build_service(load_settings(data_dir, **overrides)))
    try:
        yield service
    finally:
        service.close()


def load_settings(data_dir: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment and ``ragserve.toml``, ``--data-dir`` and per-section
    ``overrides`` applied; invalid settings exit 2."""
    try:
        settings = Settings()
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": data_dir})
        for section, values in overrides.items():
            current = getattr(settings, section)
            settings = settings.model_copy(update={section: current.model_copy(update=values)})
        return settings
    except ValidationError as exc:
        fail(f"invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", 2)


def resolve_tenant(service: RagService, tenant: str | None) -> str:
    """``--tenant`` when given, else the service's settings' tenant."""
    return tenant or service.settings.tenant


def guard(action: Callable[[], T]) -> T:
    """Run ``action``, turning ragserve errors into one line on stderr and an exit code."""
    try:
        return action()
    except (InputError, NotFoundError) as exc:
        fail(str(exc), 2)
    except RagError as exc:
        fail(str(exc), 1)


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def parse_mode(mode: str | None) -> Mode | None:
    if mode is None:
        return None
    if mode not in ("bm25", "dense", "hybrid"):
        fail(f"unknown mode {mode!r}; use bm25, dense or hybrid", 2)
    return mode  # type: ignore[return-value]


@contextmanager
def progress_bar(quiet: bool = False) -> Iterator[Progress]:
    """A progress bar on stderr, shown only on a terminal."""
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


def print_metrics(metrics: dict[str, Any], as_json: bool) -> None:
    """A two-column table, or one JSON object."""
    if as_json:
        print(json.dumps(metrics))
        return
    table = Table("metric", "value")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)
