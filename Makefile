# Two commands set everything up on a fresh machine: `make demo` and `make test` (`make site` renders the demo's notebooks).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAMP_DEMO := $(VENV)/.installed-demo
PRESET ?= tiny
# the checkout's own phi1_nb first on the path (a git worktree may share another checkout's .venv)
export PYTHONPATH := $(CURDIR)
# an environment that sets PYTHONDONTWRITEBYTECODE (this workplace's does) makes every fresh Python compile each module
# it imports from source again: 3.7 s of CPU for a pool worker importing scikit-learn against 1.1 s from bytecode, and
# every stage kernel and test process pays the same. Inside make, the first import writes the bytecode it needs.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo site test install install-demo check-clean nbtest pytest export clean-nbs

# (re)installs when .venv is missing or pyproject.toml's content changed since the last install.
# One pip call: torch==2.13.0 (the CPU build on a CPU machine) and the package, no .pyc compiled ahead
# (the first import writes those it needs: PYTHONDONTWRITEBYTECODE is unexported above). `install` adds the dev and
# ray extras (tests, site, exports); the demo needs the package alone (install-demo), and is done when either stamp is current.
install:
	@if ! cmp -s pyproject.toml $(STAMP); then \
	  set -e; test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  echo "installing torch==2.13.0 and -e .[dev,ray]"; \
	  $(BIN)/python -m pip install -q --no-compile torch==2.13.0 -e ".[dev,ray]"; \
	  cp pyproject.toml $(STAMP); fi

install-demo:
	@if ! cmp -s pyproject.toml $(STAMP) && ! cmp -s pyproject.toml $(STAMP_DEMO); then \
	  set -e; test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  echo "installing torch==2.13.0 and -e . (make install adds the dev and ray extras)"; \
	  $(BIN)/python -m pip install -q --no-compile torch==2.13.0 -e .; \
	  cp pyproject.toml $(STAMP_DEMO); fi

demo: install-demo
	$(BIN)/phi1 pipeline --preset $(PRESET)

# the executed walkthrough of `make demo` as a static site in _site/ (open _site/index.html), checked in headless Chromium
site: install
	$(BIN)/python scripts/make_site.py --run runs/$(PRESET) --out _site

# fails when the committed notebooks are not clean or phi1_nb/ is not what nbdev-export writes
check-clean: install
	@before=$$(git status --porcelain -- nbs phi1_nb); \
	$(BIN)/nbdev-clean && $(BIN)/nbdev-export; \
	after=$$(git status --porcelain -- nbs phi1_nb); \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-clean/nbdev-export changed tracked files:"; git status --porcelain -- nbs phi1_nb; git diff --stat -- nbs phi1_nb; exit 1; fi; \
	echo "notebooks clean, export in sync"
	$(BIN)/python scripts/make_readme.py --check

nbtest: install
	$(BIN)/nbdev-test --n-workers 2 --timing

pytest: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadscope --no-loadscope-reorder -m "not serial" --durations=40 tests
	$(BIN)/python -m pytest -q -p no:cacheprovider -m serial --durations=10 tests/test_distributed.py tests/test_ray.py \
	  tests/test_sandbox.py tests/test_corpus_parallel.py

test: check-clean nbtest pytest

export: install
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean && $(BIN)/python scripts/make_readme.py
