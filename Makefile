# The two commands: `make run` and `make test`. Each creates .venv and installs on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
PYTEST_ARGS ?=

.PHONY: run test test-all install install-dev migrate seed serve bench clean

run: $(VENV)/.installed
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(FLASK) serve

test: $(VENV)/.installed-dev
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# Everything, including the slow reliability tests (what .ci/run runs).
test-all: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"' \
	  || { echo "Python 3.11 is required (found $(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtualenv: apt-get install -y python3.11-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: $(VENV)/.installed
	$(FLASK) db upgrade

clean:
	rm -rf $(VENV) .pytest_cache
