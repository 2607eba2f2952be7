"""Where the benchmarks find the team's evaluation data: ``../shared/data`` beside the repo."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT / ".." / "shared" / "data"


def scifact_dir(given: Path | None) -> Path:
    """The BEIR SciFact folder (``given`` or the shared one); exits with a message if absent."""
    folder = given if given is not None else DATA_ROOT / "scifact"
    if not (folder / "corpus.jsonl").is_file():
        sys.exit(
            f"error: SciFact not found at {folder.resolve()} (expected corpus.jsonl there);\n"
            "put BEIR SciFact under ../shared/data/scifact next to the repo or pass --data"
        )
    return folder
