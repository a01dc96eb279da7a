# The two commands: `make run` and `make test`. Each creates .venv and installs on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
PYTEST_ARGS ?=
# Two test processes (one per core here): much of the suite waits on real servers, locks and browsers.
PYTEST_N   ?= auto

.PHONY: run test test-all test-postgres pg-tests install install-dev migrate seed serve bench screenshots clean

run: $(VENV)/.installed
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(FLASK) serve

test: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(PYTEST_N) -m "not slow" $(PYTEST_ARGS)

# Everything (what .ci/run runs): the fast suite, then the slow reliability tests on their own, because they
# measure latency under load and must not share the two cores with the rest of the suite.
test-all: test
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

# The integration tests again on PostgreSQL, the production database (.ci/run runs this too). Uses the server in
# PANEL_TEST_DATABASE_URL (postgresql://user@host:port/postgres, a user that may create databases) when set,
# otherwise a private throw-away cluster started by .ci/with-postgres (needs Debian's postgresql package).
PG_TESTS := tests/test_reminder_sweep.py tests/test_reminder_worker.py tests/test_sage_store.py \
            tests/test_sage_flow.py tests/test_reminder_settings.py tests/test_recipients.py tests/reliability \
            tests/test_throttle.py tests/test_sessions.py tests/test_oauth_client.py tests/test_derived.py \
            tests/test_widget_poll.py tests/test_heartbeat.py tests/test_sage_refresh.py \
            tests/test_connection_check.py tests/test_channels.py tests/test_metrics.py
PG_RUN = $(BIN)/pytest -n $(PYTEST_N) -m "not slow" $(PG_TESTS) $(PYTEST_ARGS) && $(BIN)/pytest -m slow $(PG_TESTS) $(PYTEST_ARGS)
# The list above, for .ci/run.
pg-tests:
	@echo $(PG_TESTS)

test-postgres: $(VENV)/.installed-dev
ifeq ($(strip $(PANEL_TEST_DATABASE_URL)),)
	.ci/with-postgres sh -c '$(PG_RUN)'
else
	$(PG_RUN)
endif

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

# The screenshots in docs/screenshots/, taken from the running app (flask serve) in Chromium: run after UI changes.
screenshots: $(VENV)/.installed-dev
	$(BIN)/python -m bench.screenshots

# Benchmarks 1, 2, 4, 5, 6 and 7 (bench/README.md): by hand, never in `make test`; loopback only, about 25 minutes.
# Needs wrk (apt-get install -y wrk) and, for benchmark 6, PostgreSQL; the widget profile uses pyinstrument.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.widget_poll
	$(BIN)/python -m bench.page_weight
	$(BIN)/python -m bench.email_throughput
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.company_size
	$(BIN)/python -m bench.tabs
