# The two front-door commands: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
export FOLLOWUP_CONFIG ?= $(CURDIR)/config

.PHONY: run test bench chaos install dev clean db

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)
dev: $(DEVSTAMP)

## make run: set up, migrate the SQLite db, load the example config and contacts, run the worker and the dashboard
run: $(STAMP)
	$(BIN)/followup db upgrade
	$(BIN)/followup validate
	$(BIN)/followup contacts import config/example-contacts.csv
	$(BIN)/followup enroll winter-sale --tag winter
	$(BIN)/followup enroll welcome-en --tag newsletter
	@echo "dashboard: http://127.0.0.1:8080/dashboard (password: $${FOLLOWUP_DASHBOARD_PASSWORD:-followup})"
	FOLLOWUP_DASHBOARD_PASSWORD=$${FOLLOWUP_DASHBOARD_PASSWORD:-followup} $(BIN)/followup serve --host 127.0.0.1 --port 8080 & \
	  SERVE=$$!; trap "kill $$SERVE 2>/dev/null" EXIT INT TERM; $(BIN)/followup worker --interval 5

## make test: set up dev dependencies and run the whole suite, one pytest-xdist worker per core (TEST_WORKERS=0: in one process)
TEST_WORKERS ?= auto
test: $(DEVSTAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

bench: $(DEVSTAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## make chaos: random kills over 3 workers on PostgreSQL (FOLLOWUP_BENCH_POSTGRES_URL or FOLLOWUP_TEST_POSTGRES_URL)
chaos: $(DEVSTAMP)
	$(BIN)/python -m bench.chaos $(ROUNDS)

clean:
	rm -rf $(VENV) var
