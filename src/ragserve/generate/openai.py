"""Answers from any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI)
through the official ``openai`` SDK (extra ``openai``); servers differ only by ``base_url``."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ragserve.config import LLMSettings
from ragserve.generate.prompt import Prompt, build_prompt, detect_abstention, strip_pieces
from ragserve.openai_compat import OPENAI_URL, backend_errors, openai_client
from ragserve.types import Generation, Source, Usage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


class OpenAIGenerator:
    """Grounded chat completions from an OpenAI-compatible server, streamed or not."""

    def __init__(
        self,
        base_url: str | None,
        model: str,
        *,
        api_key: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        context_tokens: int = 2048,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        system_prompt: str | None = None,
    ) -> None:
        self._client = openai_client(
            base_url, api_key, timeout_s=timeout_s, max_retries=max_retries
        )
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.system_prompt = system_prompt
        # The server's tokenizer is unknown here: budget the prompt by the rough estimate.
        self._prompt_tokens = max(256, context_tokens - max_tokens - 64)
        self._url = str(self._client.base_url)
        self._model_id = f"openai:{base_url or OPENAI_URL}:{model}"

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> OpenAIGenerator:
        return cls(
            settings.base_url,
            settings.model,
            api_key=settings.api_key,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            context_tokens=settings.context_tokens,
            timeout_s=settings.timeout_s,
            system_prompt=settings.system_prompt,
        )

    @property
    def model_id(self) -> str:
        return self._model_id

    def generate(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> Generation:
        prompt = build_prompt(
            question, sources, max_tokens=self._prompt_tokens, system=self.system_prompt
        )
        with backend_errors("openai", self._url):
            response = self._create(prompt, stream=False, max_tokens=max_tokens)
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        usage = response.usage
        return Generation(
            text=text,
            abstained=detect_abstention(text),
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            model=self._model_id,
        )

    def stream(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> Generator[str, None, Generation]:
        """Yield the answer as the server sends it; the generator's return value is the
        Generation, with usage when the server honours ``stream_options.include_usage``
        (llama-cpp-python's server ignores it: usage is then zero)."""
        prompt = build_prompt(
            question, sources, max_tokens=self._prompt_tokens, system=self.system_prompt
        )
        usage = Usage()
        parts: list[str] = []

        def deltas(chunks: Any) -> Iterator[str]:
            nonlocal usage
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content

        with backend_errors("openai", self._url):
            chunks = self._create(prompt, stream=True, max_tokens=max_tokens)
            with chunks:  # closes the HTTP response if the caller stops early
                for piece in strip_pieces(deltas(chunks)):
                    parts.append(piece)
                    yield piece
        text = "".join(parts)
        return Generation(text, detect_abstention(text), usage, self._model_id)

    def rewrite(self, system: str, user: str) -> str:
        """One short, non-streamed completion for helper tasks (making a follow-up question
        stand alone)."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        with backend_errors("openai", self._url):
            response = self._client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=128, temperature=0.0
            )
        return (response.choices[0].message.content or "") if response.choices else ""

    def _create(self, prompt: Prompt, *, stream: bool, max_tokens: int | None = None) -> Any:
        limit = min(max_tokens, self.max_tokens) if max_tokens else self.max_tokens
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        if stream:
            import openai

            try:
                return self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    max_tokens=limit,
                    temperature=self.temperature,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            except openai.BadRequestError as exc:  # a strict server that predates the option
                if "stream_options" not in str(exc):
                    raise
            return self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=limit,
                temperature=self.temperature,
                stream=True,
            )
        return self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=limit,
            temperature=self.temperature,
        )
