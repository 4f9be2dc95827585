# Two commands: `make run` serves the portal with embedded defaults, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed
JS_STAMP   := tests/js/node_modules/.installed
OHIF_STAMP := var/ohif/.installed-by-make

.PHONY: run test lint typecheck pytest bench clean messages

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(RUN_STAMP) $@

# The OHIF viewer: the @ohif/app release pinned in portal/settings.py, downloaded and verified by
# Python alone (no Node). Offline, the portal still runs and says the viewer is not installed;
# the next make tries again. Installing again is a no-op (see docs/ohif.md).
$(OHIF_STAMP): portal/settings.py | $(RUN_STAMP)
	@if $(BIN)/portal ohif install; then mkdir -p $(@D) && touch $@; else \
		echo "warning: the OHIF viewer is not installed; the portal runs without it" >&2; fi

run: $(RUN_STAMP) $(OHIF_STAMP)
	$(BIN)/portal run --demo

test: $(TEST_STAMP) lint typecheck pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(TEST_STAMP)
	$(BIN)/mypy portal storage reviewers bench

# tus-js-client (the most used third-party tus client) for the interoperability test, from npm.
$(JS_STAMP): tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/js --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the tus-js-client test will skip (and fail in CI)"; fi

pytest: $(TEST_STAMP) $(JS_STAMP) $(OHIF_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The interface's strings: extract them from the code and templates (babel.cfg) and merge them
# into every catalogue; then translate the new entries (tests/portal/test_i18n.py checks).
messages: $(TEST_STAMP)
	mkdir -p build
	$(BIN)/pybabel extract -F babel.cfg -k N_plural:1,2 --no-location --sort-output --omit-header -o build/messages.pot .
	$(BIN)/pybabel update -i build/messages.pot -d portal/locale --no-fuzzy-matching --width 100

bench: $(TEST_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache tests/js/node_modules
