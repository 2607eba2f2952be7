"""Server-Sent Events parsing: the few lines of the format the API's answer stream uses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawEvent:
    """One event as sent: its name and its JSON data."""

    name: str
    data: dict[str, Any]


def parse_events(lines: Iterable[str]) -> Iterator[RawEvent]:
    """Events from ``event:``/``data:`` lines; a blank line ends one, ``:`` lines are comments."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield RawEvent(name, json.loads("\n".join(data)))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
    if data:  # a stream cut without its final blank line still delivers its last event
        yield RawEvent(name, json.loads("\n".join(data)))
