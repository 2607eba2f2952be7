"""Locust users for ``api_load.py`` and ``cache_api.py``: each POSTs /v1/search (or
/v1/query) with a new query, with no wait.

Run by those scripts with the bench venv's locust (locust is not a project dependency).
It reads its inputs from the environment:

RAGLOAD_KEY          the API key (``Authorization: Bearer``)
RAGLOAD_QUERIES      a JSON file holding a list of query strings
RAGLOAD_COLLECTION   the collection to search
RAGLOAD_USERS        how many users the run starts, to spread their starting queries
RAGLOAD_MODE         optional retrieval mode (default: the server's)
RAGLOAD_ROUTE        /v1/search (default) or /v1/query
RAGLOAD_UNIQUE       1: append " (<user>.<n>)" to every query, so none repeats (no cache hit)

User ``n`` starts at query ``n * len(queries) // users`` and walks forward, so no user repeats
a query unless it sends more requests than there are queries.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, task

QUERIES: list[str] = json.loads(Path(os.environ["RAGLOAD_QUERIES"]).read_text(encoding="utf-8"))
HEADERS = {"Authorization": f"Bearer {os.environ['RAGLOAD_KEY']}"}
COLLECTION = os.environ["RAGLOAD_COLLECTION"]
USERS = max(1, int(os.environ.get("RAGLOAD_USERS", "1")))
MODE = os.environ.get("RAGLOAD_MODE") or None
ROUTE = os.environ.get("RAGLOAD_ROUTE", "/v1/search")
UNIQUE = os.environ.get("RAGLOAD_UNIQUE") == "1"
_user_numbers = itertools.count()


class SearchUser(FastHttpUser):
    """One client sending searches back to back."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.number = next(_user_numbers)
        self.position = self.number * len(QUERIES) // USERS
        self.sent = 0

    @task
    def search(self) -> None:
        text_field, result_field = (
            ("question", "answer") if ROUTE == "/v1/query" else ("query", "results")
        )
        body: dict[str, Any] = {text_field: self.next_query(), "collection": COLLECTION}
        if MODE:
            body["mode"] = MODE
        with self.client.post(
            ROUTE, json=body, headers=HEADERS, name=ROUTE, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            elif not response.json().get(result_field):
                response.failure(f"no {result_field}")

    def next_query(self) -> str:
        query = QUERIES[self.position % len(QUERIES)]
        self.position += 1
        self.sent += 1
        return f"{query} ({self.number}.{self.sent})" if UNIQUE else query
