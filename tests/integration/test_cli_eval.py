"""`ragserve eval` as a real process on a SciFact subset: stored runs, a paired comparison with
its JSON and HTML report, and the CI gate's exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

QUERIES = 60
DOCUMENTS = 300
GOOD = '[retrieve]\nmode = "hybrid"\n'
# MMR with λ = 0 ranks by diversity alone: nDCG@10 falls from 0.94 to 0.85 on this subset
# (11 queries worse, 1 better; paired t p = 0.004).
BAD = {"rerank": {"name": "mmr", "mmr_lambda": 0.0}}
IMAGE = re.compile(r'<img src="data:image/png;base64,')


def run(data_dir: Path, model_cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(model_cache),
    }
    return subprocess.run(
        [sys.executable, "-m", "ragserve.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 SciFact test queries, their relevant abstracts and other abstracts up to
    300, in BEIR layout; a second split ``few`` judges 10 of the queries."""
    source = shared_data / "scifact"
    folder = tmp_path_factory.mktemp("scifact-subset")
    rows = [line.split("\t") for line in read_lines(source / "qrels/test.tsv")][1:]
    queries = list(dict.fromkeys(row[0] for row in rows))[:QUERIES]
    judged = [row for row in rows if row[0] in queries]
    relevant = {row[1] for row in judged}
    corpus = [json.loads(line) for line in read_lines(source / "corpus.jsonl")]
    kept = [d for d in corpus if d["_id"] in relevant]
    kept += [d for d in corpus if d["_id"] not in relevant][: DOCUMENTS - len(kept)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in kept))
    texts = [json.loads(line) for line in read_lines(source / "queries.jsonl")]
    wanted = [q for q in texts if q["_id"] in queries]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in wanted))
    (folder / "qrels").mkdir()
    for split, ids in (("test", set(queries)), ("few", set(queries[:10]))):
        lines = ["query-id\tcorpus-id\tscore"] + ["\t".join(r) for r in judged if r[0] in ids]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("configs")
    (folder / "good.toml").write_text(GOOD)
    (folder / "bad.json").write_text(json.dumps(BAD))
    (folder / "broken.toml").write_text("[retrieve\nmode = 1\n")
    (folder / "unknown.json").write_text('{"retrieve": {"mode": "psychic"}}')
    return {path.stem: path for path in folder.iterdir()}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval-data")


@pytest.fixture(scope="module")
def two_runs(
    subset: Path, configs: dict[str, Path], data_dir: Path, model_cache: Path
) -> tuple[str, str, list[dict[str, object]]]:
    """One command, two configurations: (good run id, bad run id, its JSON lines)."""
    result = run(
        data_dir, model_cache, "eval", "beir", str(subset),
        "--config", str(configs["good"]), "--config", str(configs["bad"]), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = json_lines(result)
    runs = [line for line in lines if "run_id" in line]
    return str(runs[0]["run_id"]), str(runs[1]["run_id"]), lines


def test_two_configurations_give_two_stored_runs_and_a_report(
    two_runs: tuple[str, str, list[dict[str, object]]], data_dir: Path, model_cache: Path
) -> None:
    """Both runs are stored; the comparison JSON has p-values and the 60 per-query pairs;
    the HTML report embeds its plots."""
    good, bad, lines = two_runs
    listed = run(data_dir, model_cache, "eval", "runs", "--dataset", "scifact-subset0/test",
                 "--json")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert {r["run_id"] for r in json.loads(listed.stdout)} == {good, bad}
    assert [line["label"] for line in lines if "run_id" in line] == ["good", "bad"]
    comparison = next(line for line in lines if "html" in line)
    stored = json.loads(Path(str(comparison["json"])).read_text())
    assert (stored["run_a"], stored["run_b"], stored["queries"]) == (good, bad, QUERIES)
    ndcg = next(m for m in stored["metrics"] if m["metric"] == "ndcg@10")
    assert 0 <= ndcg["t_p"] < 0.05
    assert ndcg["verdict"] == "a_better"
    assert len(stored["pairs"]["ndcg@10"]) == QUERIES
    html = Path(str(comparison["html"])).read_text()
    assert len(IMAGE.findall(html)) >= 3
    assert not re.search(r"https?://", html)


def test_the_gate_exits_3_when_the_new_run_is_significantly_worse(
    two_runs: tuple[str, str, list[dict[str, object]]],
    subset: Path,
    configs: dict[str, Path],
    data_dir: Path,
    model_cache: Path,
) -> None:
    """The bad configuration against the good baseline fails the nDCG@10 gate."""
    good, _, _ = two_runs
    result = run(
        data_dir, model_cache, "eval", "beir", str(subset), "--config", str(configs["bad"]),
        "--baseline", good, "--gate", "ndcg@10",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "significantly worse than baseline" in result.stderr
    assert "ndcg@10" in result.stderr
    assert "a_better" in result.stdout  # the comparison table is printed


def test_the_gate_passes_in_the_other_direction(
    two_runs: tuple[str, str, list[dict[str, object]]],
    subset: Path,
    configs: dict[str, Path],
    data_dir: Path,
    model_cache: Path,
) -> None:
    """The good configuration against the bad baseline: better, exit 0."""
    _, bad, _ = two_runs
    result = run(
        data_dir, model_cache, "eval", "beir", str(subset), "--config", str(configs["good"]),
        "--baseline", bad, "--gate", "ndcg@10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "b_better" in result.stdout


def test_compare_prints_writes_and_fails_if_worse(
    two_runs: tuple[str, str, list[dict[str, object]]], data_dir: Path, model_cache: Path
) -> None:
    """`eval compare` by id prefix: the report at the default path, and exit 3 only when B
    is worse on the named metric."""
    good, bad, _ = two_runs
    worse = run(data_dir, model_cache, "eval", "compare", good[:8], bad[:8],
                "--fail-if-worse", "ndcg@10")  # fmt: skip
    assert worse.returncode == 3, worse.stderr
    assert (data_dir / "reports" / f"{good}-vs-{bad}.html").is_file()
    assert (data_dir / "reports" / f"{good}-vs-{bad}.json").is_file()
    report = data_dir / "custom" / "cmp.html"
    better = run(data_dir, model_cache, "eval", "compare", bad, good, "--report", str(report),
                 "--fail-if-worse", "ndcg@10")  # fmt: skip
    assert better.returncode == 0, better.stderr
    assert report.is_file()
    assert report.with_suffix(".json").is_file()


def test_show_writes_a_run_report(
    two_runs: tuple[str, str, list[dict[str, object]]], data_dir: Path, model_cache: Path
) -> None:
    """`eval show RUN --report` prints the metrics and writes the run's HTML."""
    good, _, _ = two_runs
    report = data_dir / "run.html"
    result = run(data_dir, model_cache, "eval", "show", good, "--report", str(report))
    assert result.returncode == 0, result.stderr
    assert "ndcg@10" in result.stdout
    assert len(IMAGE.findall(report.read_text())) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--config", "{broken}"), "is not valid"),
        (("--config", "{unknown}"), "retrieve.mode"),
        (("--config", "/nonexistent/config.json"), "cannot read configuration"),
        (("--baseline", "ffffffffffff"), "ffffffffffff"),
        (("--gate", "ndcg@10"), "--gate needs --baseline"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    subset: Path,
    configs: dict[str, Path],
    data_dir: Path,
    model_cache: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    """Unreadable or invalid configurations, unknown runs: one line on stderr, exit 2."""
    filled = [a.format(**{k: str(v) for k, v in configs.items()}) for a in args]
    result = run(data_dir, model_cache, "eval", "beir", str(subset), *filled)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_runs_of_different_datasets_are_not_compared(
    two_runs: tuple[str, str, list[dict[str, object]]],
    subset: Path,
    data_dir: Path,
    model_cache: Path,
) -> None:
    """A run on another split of the same corpus cannot be gated on, nor compared."""
    good, _, _ = two_runs
    gated = run(data_dir, model_cache, "eval", "beir", str(subset), "--split", "few",
                "--baseline", good, "--gate", "ndcg@10")  # fmt: skip
    assert gated.returncode == 2
    assert "is of dataset" in gated.stderr
    few = run(data_dir, model_cache, "eval", "beir", str(subset), "--split", "few", "--json")
    assert few.returncode == 0, few.stderr
    few_id = str(json_lines(few)[0]["run_id"])
    compared = run(data_dir, model_cache, "eval", "compare", good, few_id)
    assert compared.returncode == 2
    assert "different datasets" in compared.stderr
