"""An LLM judge over any OpenAI-compatible chat server (extra ``openai``): faithfulness to the
sources, relevance and completeness of an answer, each 1-5 with a reason.

The judge asks for JSON (``response_format`` ``json_object`` carrying the schema, which
llama.cpp's server turns into a grammar and others treat as JSON mode; then ``json_schema``;
then none, as the server refuses them), validates the reply with pydantic
and asks again, showing the model its mistake, up to ``retries`` more times on invalid JSON,
a reply that fails validation, or a transport error. When every attempt failed the
judgement records the failure instead of raising, so one bad reply never ends a run.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragserve.config import EvalSettings
from ragserve.errors import BackendError, ConfigError
from ragserve.openai_compat import backend_errors, openai_client

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.types.chat import ChatCompletionMessageParam

__all__ = ["AnswerJudge", "Judgement", "OpenAIJudge", "Rating", "Ratings", "parse_ratings"]

CRITERIA = ("faithfulness", "relevance", "completeness")
MAX_REASON_CHARS = 400
_FORMATS = ("json_object", "json_schema", "none")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)

SYSTEM_PROMPT = (
    "You grade answers written by a question-answering system from numbered sources. "
    "Rate three criteria from 1 (worst) to 5 (best), each with a one-sentence reason:\n"
    "- faithfulness: every claim of the answer is supported by the sources (1: contradicted "
    "or invented, 5: fully supported);\n"
    "- relevance: the answer addresses the question asked (1: off topic, 5: directly);\n"
    "- completeness: the answer gives everything the question asks for, judged against the "
    "reference answers when given (1: nothing, 5: all of it).\n"
    'Reply with one JSON object only, shaped like {"faithfulness": {"score": <1-5>, '
    '"reason": "<one sentence>"}, "relevance": {...}, "completeness": {...}}.'
)


class Rating(BaseModel):
    """One criterion's score and why."""

    model_config = ConfigDict(extra="ignore")

    score: int = Field(ge=1, le=5, strict=True)
    reason: str = Field(min_length=1, max_length=4 * MAX_REASON_CHARS)


class Ratings(BaseModel):
    """The judge's reply, validated."""

    model_config = ConfigDict(extra="ignore")

    faithfulness: Rating
    relevance: Rating
    completeness: Rating


_RATING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": dict.fromkeys(CRITERIA, _RATING_SCHEMA),
    "required": list(CRITERIA),
    "additionalProperties": False,
}


class InvalidJudgement(ValueError):
    """The judge's reply is not JSON, or not shaped like :class:`Ratings`."""


@dataclass(frozen=True)
class Judgement:
    """The ratings (``None`` when every attempt failed), attempts made, and the last error."""

    ratings: Ratings | None
    attempts: int
    error: str | None = None

    def scores(self) -> dict[str, float]:
        """``judge_failed`` (0 or 1) and, when rated, ``judge_<criterion>`` for each one."""
        if self.ratings is None:
            return {"judge_failed": 1.0}
        rated = {f"judge_{c}": float(getattr(self.ratings, c).score) for c in CRITERIA}
        return {"judge_failed": 0.0, **rated}

    def as_dict(self) -> dict[str, Any]:
        ratings = self.ratings.model_dump() if self.ratings is not None else None
        return {"ratings": ratings, "attempts": self.attempts, "error": self.error}


class AnswerJudge(Protocol):
    def judge(
        self, question: str, answer: str, sources: Sequence[str], golds: Sequence[str] = ()
    ) -> Judgement:
        """Rate ``answer``; never raises for a bad reply (see :class:`Judgement`)."""
        ...


def parse_ratings(content: str) -> Ratings:
    """The :class:`Ratings` in a reply; code fences and text around the object are
    tolerated. Raises :class:`InvalidJudgement` saying what is wrong."""
    text = _FENCE.sub("", content.strip())
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise InvalidJudgement("the reply holds no JSON object")
    try:
        return Ratings.model_validate(json.loads(text[start : end + 1]))
    except json.JSONDecodeError as exc:
        raise InvalidJudgement(f"invalid JSON: {exc.msg} at character {exc.pos}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the object"
        raise InvalidJudgement(f"{where}: {first['msg']}") from None


def judge_messages(
    question: str,
    answer: str,
    sources: Sequence[str],
    golds: Sequence[str] = (),
    *,
    max_source_chars: int = 4000,
) -> list[dict[str, str]]:
    """The system and user messages; sources are cut to share ``max_source_chars``."""
    share = max(200, max_source_chars // max(1, len(sources)))
    numbered = "\n\n".join(
        f"[{n}] {' '.join(text.split())[:share]}" for n, text in enumerate(sources, start=1)
    )
    parts = [f"Question: {question}", f"Sources:\n{numbered or '(none)'}"]
    if golds:
        parts.append("Reference answers: " + " | ".join(golds))
    parts.append(f"Answer to grade: {answer}")
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


class OpenAIJudge:
    """Judge through an OpenAI-compatible chat server (the SDK's own retries are off: this
    class counts attempts itself)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_tokens: int = 512,
    ) -> None:
        if not model:
            raise ConfigError("set eval.judge_model to the judge server's model name")
        self._client: OpenAI = openai_client(base_url, api_key, timeout_s=timeout_s, max_retries=0)
        self.model = model
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.response_format = _FORMATS[0]
        self._url = str(self._client.base_url)

    @classmethod
    def from_settings(cls, settings: EvalSettings) -> OpenAIJudge | None:
        """The configured judge, or ``None`` when ``judge_base_url`` is empty."""
        if not settings.judge_base_url:
            return None
        key = settings.judge_api_key
        return cls(
            settings.judge_base_url,
            settings.judge_model,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.judge_timeout_s,
            retries=settings.judge_retries,
        )

    def judge(
        self, question: str, answer: str, sources: Sequence[str], golds: Sequence[str] = ()
    ) -> Judgement:
        """Ask, validate, and ask again on failure, up to ``retries`` more times."""
        first = judge_messages(question, answer, sources, golds)
        messages = list(first)
        error = ""
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                time.sleep(self.backoff_s * (attempt - 1))
            try:
                content = self._complete(messages, temperature=0.0 if attempt == 1 else 0.7)
            except BackendError as exc:
                error = str(exc)
                continue
            try:
                return Judgement(parse_ratings(content), attempt)
            except InvalidJudgement as exc:
                error = str(exc)
                # Show the model its reply and what was wrong with it.
                messages = [
                    *first,
                    {"role": "assistant", "content": content[:2000]},
                    {"role": "user", "content": f"That reply is invalid ({exc}). " + _AGAIN},
                ]
        return Judgement(None, self.retries + 1, error)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def _complete(self, messages: list[dict[str, str]], *, temperature: float) -> str:
        """One completion. A server refusing the request (400/422) gets the next response
        format, for this and later calls; with none left the refusal is raised."""
        import openai

        with backend_errors("judge", self._url):
            while True:
                try:
                    response = self._client.chat.completions.create(
                        model=self.model,
                        messages=_typed(messages),
                        max_tokens=self.max_tokens,
                        temperature=temperature,
                        **_format_arguments(self.response_format),
                    )
                except (openai.BadRequestError, openai.UnprocessableEntityError):
                    if self.response_format == _FORMATS[-1]:
                        raise
                    self.response_format = _FORMATS[_FORMATS.index(self.response_format) + 1]
                    continue
                return (response.choices[0].message.content or "") if response.choices else ""


_AGAIN = "Reply again with the JSON object only, every score an integer from 1 to 5."


def _format_arguments(response_format: str) -> dict[str, Any]:
    if response_format == "json_schema":
        schema = {"name": "judgement", "schema": JSON_SCHEMA}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    if response_format == "json_object":  # the schema key: llama.cpp's server honours it
        return {"response_format": {"type": "json_object", "schema": JSON_SCHEMA}}
    return {}


def _typed(messages: list[dict[str, str]]) -> list[ChatCompletionMessageParam]:
    return messages  # type: ignore[return-value]  # plain role/content dicts are valid params
