# The README's two commands: `make run` (set up and run everything locally) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extras each command installs (pyproject.toml): the local training pool needs TensorFlow ("train").
RUN_EXTRAS  := inference,train
TEST_EXTRAS := inference,train,dev
# The dashboard (web/) is built into api/static/ whenever one of its sources is newer than the build.
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json web/package.json
DASHBOARD   := api/static/index.html
NPM_STAMP   := web/node_modules/.loopline-npm-ci
# The Label Studio the end-to-end test runs, in its own virtualenv cached across checkouts (the tests need no network).
LABEL_STUDIO_VENV := $(HOME)/.cache/loopline/label-studio-1.23.2
LABEL_STUDIO      := $(LABEL_STUDIO_VENV)/bin/python

.PHONY: run test clean dashboard web-types

run: $(VENV)/.installed-run $(DASHBOARD)
	$(BIN)/loopline up

test: $(VENV)/.installed-test $(DASHBOARD) $(LABEL_STUDIO)
	$(BIN)/loopline services
	$(BIN)/pytest

dashboard: $(DASHBOARD)

# After an API change: regenerate the dashboard's API types from the OpenAPI document (a test fails while stale).
web-types: $(VENV)/.installed-test $(NPM_STAMP)
	$(BIN)/python web/openapi_types.py

$(DASHBOARD): $(NPM_STAMP) $(WEB_SOURCES)
	cd web && npm run build
	touch $@

$(NPM_STAMP): web/package-lock.json
	@command -v npm >/dev/null || { echo "the dashboard needs Node.js 18+ and npm: see the README, 'What to install first'"; exit 1; }
	cd web && npm ci --no-audit --no-fund
	touch $@

$(LABEL_STUDIO):
	rm -rf $(LABEL_STUDIO_VENV).building
	$(PYTHON) -m venv $(LABEL_STUDIO_VENV).building
	$(LABEL_STUDIO_VENV).building/bin/pip install --quiet label-studio==1.23.2
	mv $(LABEL_STUDIO_VENV).building $(LABEL_STUDIO_VENV)

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "loopline needs Python 3.11+; run make PYTHON=python3.11 ..."'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml client/pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --editable ./client
	$(BIN)/pip install --quiet --editable '.[$(RUN_EXTRAS)]'
	touch $@

$(VENV)/.installed-test: pyproject.toml client/pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --editable ./client
	$(BIN)/pip install --quiet --editable '.[$(TEST_EXTRAS)]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache web/node_modules api/static
