"""Named backend factories: built-ins register exactly like plugins would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ragserve.errors import UnknownBackendError

T = TypeVar("T")
S = TypeVar("S")


class Registry(Generic[S, T]):
    """Maps a backend name to a factory taking that stage's settings."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._factories: dict[str, Callable[[S], T]] = {}

    def register(self, name: str) -> Callable[[Callable[[S], T]], Callable[[S], T]]:
        def decorator(factory: Callable[[S], T]) -> Callable[[S], T]:
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(self, name: str, settings: S) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            raise UnknownBackendError(
                f"unknown {self.stage} {name!r}; available: {', '.join(self.names())}"
            ) from None
        return factory(settings)
