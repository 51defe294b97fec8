# The README's two commands: `make run` (set up and run everything locally) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extras each command installs (pyproject.toml): the local training pool needs TensorFlow ("train").
RUN_EXTRAS  := inference,train
TEST_EXTRAS := inference,train,dev

.PHONY: run test clean

run: $(VENV)/.installed-run
	$(BIN)/loopline up

test: $(VENV)/.installed-test
	$(BIN)/loopline services
	$(BIN)/pytest

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "loopline needs Python 3.11+; run make PYTHON=python3.11 ..."'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --editable '.[$(RUN_EXTRAS)]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --editable '.[$(TEST_EXTRAS)]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
