"""The query cache inside the real service (embedded defaults, real model): replays, the
search path, failed answers never cached, and the semantic level when it is switched on."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence

import pytest

from ragserve.config import CacheSettings, LLMSettings, Settings
from ragserve.errors import BackendTimeout, InvalidQuery
from ragserve.service import RagService, build_service
from ragserve.types import Generation, Source, TextDocument

BELL = TextDocument("bell.txt", "The harbour bell rings at noon every day.")


@pytest.fixture
def semantic(settings: Settings) -> Iterator[RagService]:
    """The service with the semantic level on at the default threshold."""
    svc = build_service(settings.model_copy(update={"cache": CacheSettings(semantic=True)}))
    yield svc
    svc.close()


def test_a_replay_equals_the_answer_and_counts_a_question(service: RagService) -> None:
    """The second ask is cached: same text and sources, zero tokens, one more question used."""
    service.ingest_texts("c", [BELL])
    first = service.query("c", "When does the harbour bell ring?")
    second = service.query("c", "when does the harbour bell ring")
    usage = service.store.accounts.usage("default", since="2000-01-01", until="2999-12-31")
    assert (first.cached, second.cached) == (False, True)
    assert (second.text, second.sources, second.abstained) == (
        first.text,
        first.sources,
        first.abstained,
    )
    assert second.usage.total_tokens == 0
    assert usage[-1].questions == 2


def test_search_results_are_cached_per_parameters(service: RagService) -> None:
    """cached_search: a repeat is cached; another top_k is not; search() itself never is."""
    service.ingest_texts("c", [BELL])
    hits, cached = service.cached_search("c", "harbour bell")
    again, cached_again = service.cached_search("c", "Harbour  bell")
    _, other_k = service.cached_search("c", "harbour bell", top_k=1)
    assert (cached, cached_again, other_k) == (False, True, False)
    assert again == hits
    with pytest.raises(InvalidQuery):
        service.cached_search("c", "   ")


def test_an_answer_stopped_early_is_not_cached(service: RagService) -> None:
    """A stream closed before its end (a disconnect) leaves nothing in the cache."""
    service.ingest_texts("c", [BELL])
    stream = service.answer_stream("c", "When does the harbour bell ring?")
    next(iter(stream))
    stream.close()
    assert service.query("c", "When does the harbour bell ring?").cached is False


class SlowGenerator:
    """Ten pieces, 50 ms apart: past a 0.1 s deadline."""

    model_id = "slow"

    def generate(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> Generation:
        raise NotImplementedError

    def stream(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> Generator[str, None, Generation]:
        for _ in range(10):
            time.sleep(0.05)
            yield "slow "
        return Generation("slow " * 10, abstained=False, model=self.model_id)


def test_an_answer_past_its_deadline_is_not_cached(settings: Settings) -> None:
    """A generation stopped by llm.timeout_s is not cached: the next ask times out again."""
    svc = build_service(settings.model_copy(update={"llm": LLMSettings(timeout_s=0.1)}))
    svc.generator = SlowGenerator()
    try:
        svc.ingest_texts("c", [BELL])
        for _ in range(2):
            with pytest.raises(BackendTimeout):
                svc.query("c", "When does the harbour bell ring?")
    finally:
        svc.close()


def test_the_semantic_level_reuses_a_close_question_of_the_same_version(
    semantic: RagService,
) -> None:
    """A rewritten question reuses the answer; after an ingest (new version) it does not."""
    semantic.ingest_texts("c", [BELL])
    first = semantic.query("c", "When does the harbour bell ring?")
    close = semantic.query("c", "At what time does the harbour bell ring?")  # cosine 0.97
    semantic.ingest_texts("c", [TextDocument("fog.txt", "In fog the bell rings hourly.")])
    after = semantic.query("c", "At what time does the harbour bell ring?")
    assert semantic.cache is not None
    levels = {s.level: s for s in semantic.cache.stats()}
    assert (first.cached, close.cached, after.cached) == (False, True, False)
    assert close.text == first.text
    assert close.question == "At what time does the harbour bell ring?"
    assert levels["semantic"].hits == 1
