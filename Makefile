# convtrain: every target that needs the virtual environment depends on `install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/stridednet.yaml
RUN ?= $(lastword $(sort $(wildcard runs/*/config.yaml)))
DATA_DIR ?= data/caltech-101
# A local copy of the official archive is used when present (CI has one beside the repo);
# otherwise `convtrain data fetch` downloads it from CaltechDATA.
ARCHIVE ?= $(firstword $(wildcard ../shared/datasets/caltech-101/101_ObjectCategories.tar.gz))
SOURCE_FLAG := $(if $(ARCHIVE),--source $(ARCHIVE),)

.PHONY: install test lint train evaluate inspect data bench bench-search bench-search-replay bench-explain sweeps guide clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check convtrain tests
	$(BIN)/ruff format --check convtrain tests

data: install
	$(BIN)/convtrain data fetch $(SOURCE_FLAG) --data-dir $(DATA_DIR)

train: data
	$(BIN)/convtrain train $(CONFIG)

evaluate: install
	@test -n "$(RUN)" || { echo "no run directory: pass RUN=runs/<name>-<timestamp>" >&2; exit 2; }
	$(BIN)/convtrain evaluate $(patsubst %/config.yaml,%,$(RUN))

inspect: install
	$(BIN)/convtrain inspect $(CONFIG)

# BENCH_ARGS=--quick for a few minutes; the full run takes under 20 (docs/performance.md).
bench: data
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# Does a pruned search (TPE + ASHA) find the full grid's best for a third of its epochs?
# configs/sweeps/search.yaml's question; resumable (runs/bench-search/); SEARCH_ARGS=--quick
# checks it in a few minutes, the full run takes hours (docs/performance.md).
SEARCH_ARGS ?=
bench-search: data
	$(BIN)/python benchmarks/search_bench.py $(SEARCH_ARGS)

# Every sampler and pruner replayed over the full benchmark's recorded grid, 50 seeds each (a
# minute, after `make bench-search`): how likely one run of the benchmark is to pass.
bench-search-replay: install
	$(BIN)/python benchmarks/search_replay.py --work runs/bench-search/full $(REPLAY_ARGS)

# `convtrain explain` on 8 test images of RUN (a StridedNet run), counted after TensorFlow starts
# (target: under 5 s on 2 cores); writes benchmarks/results/<date>-explain.json.
bench-explain: install
	@test -n "$(RUN)" || { echo "no run directory: pass RUN=runs/<name>-<timestamp>" >&2; exit 2; }
	$(BIN)/python benchmarks/explainbench.py $(patsubst %/config.yaml,%,$(RUN))

# The Conv2D guide (docs/conv2d-guide.md): every example sweep, run on the real data into
# runs/sweeps/<name> (a sweep already there resumes, finished trials are kept), then compared
# into docs/conv2d-guide/<name>/ (table and plots written by `convtrain compare`).
# SWEEP_ARGS passes options to every sweep, e.g. SWEEP_ARGS='--set train.threads=1' to run two
# `make sweeps GUIDE_SWEEPS=...` side by side on a 2-core machine.
GUIDE_SWEEPS ?= seed filters kernel_size downsample padding dilation activation use_bias initializer l2 constraint
SWEEP_ARGS ?=
# Where the sweeps live (a long job: SWEEPS_DIR=/elsewhere keeps it out of the checkout).
SWEEPS_DIR ?= runs/sweeps

sweeps: data
	set -e; for s in $(GUIDE_SWEEPS); do \
	  $(BIN)/convtrain sweep configs/sweeps/$$s.yaml --sweep-dir $(SWEEPS_DIR)/$$s $(SWEEP_ARGS); \
	done

guide: install
	set -e; for s in $(GUIDE_SWEEPS); do \
	  $(BIN)/convtrain compare $(SWEEPS_DIR)/$$s --format markdown --out docs/conv2d-guide/$$s; \
	  rm -f docs/conv2d-guide/$$s/report.html docs/conv2d-guide/$$s/study_*.png; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
