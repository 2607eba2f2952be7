"""Full-page screenshots of the browser tests, numbered in the order they are taken."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page

ARTIFACTS_ENV = "RAGSERVE_E2E_ARTIFACTS"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".artifacts" / "e2e"


class Screenshots:
    """Saves ``01-<name>.png``, ``02-<name>.png``… and ``FAILED-<test>.png`` in one directory:
    ``$RAGSERVE_E2E_ARTIFACTS``, else ``<repo>/.artifacts/e2e``."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(os.environ.get(ARTIFACTS_ENV) or DEFAULT_DIR)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Only this helper's own files from an earlier run: the directory may hold others.
        for old in self.directory.glob("*.png"):
            if re.fullmatch(r"\d{2,}-.+|FAILED-.+", old.stem):
                old.unlink()
        self._count = 0

    def __call__(self, page: Page, name: str) -> Path:
        """Save the whole page as the next numbered PNG and return its path."""
        self._count += 1
        return self._save(page, f"{self._count:02d}-{name}")

    def failure(self, page: Page, test_name: str) -> Path:
        """Save the page as it was when ``test_name`` failed."""
        return self._save(page, f"FAILED-{test_name}")

    def _save(self, page: Page, stem: str) -> Path:
        path = self.directory / (re.sub(r"[^\w.-]+", "_", stem) + ".png")
        page.screenshot(path=path, full_page=True)
        return path
