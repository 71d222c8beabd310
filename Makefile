# ZI Warehouse. The README's two commands: `make run` (build everything) and `make test`.
# Every target sets up what it needs (virtual environment, dependencies, dbt manifest), idempotently.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export ZI_DATA_DIR ?= $(CURDIR)/data
# The Dagster instance of this data directory: every run (zi build, schedule, sensor, UI) goes into it.
export DAGSTER_HOME ?= $(ZI_DATA_DIR)/dagster
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1
DBT_SOURCES := dbt_project.yml $(shell find models seeds dbt_project -type f 2>/dev/null)

.PHONY: setup run test test-fast lint format dev bench runtime-packages test-packages instance clean

setup: $(VENV)/.installed target/manifest.json

# Pinned install from requirements.lock (uv resolves nothing at install time; the lock is the truth).
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@# Byte-compile once: with PYTHONDONTWRITEBYTECODE set, every dbt/Dagster start would recompile.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	touch $@

# The dbt manifest is built here, at set-up, never when Dagster imports the code.
target/manifest.json: $(VENV)/.installed $(DBT_SOURCES)
	@# Parsed with the pipeline's connection settings (zi_warehouse/dbt_launcher.py), so every build's dbt
	@# starts from this partial-parse file instead of parsing the whole project again.
	ZI_DBT_DATABASE=zi.duckdb $(BIN)/dbt parse --profiles-dir dbt_project --quiet
	touch $@

# System packages, installed only when missing: what the pipeline needs (Chromium for the report's PDF),
# and on top what the tests need (PostgreSQL server binaries, poppler-utils).
runtime-packages:
	scripts/install-system-packages.sh run

test-packages:
	scripts/install-system-packages.sh test

# $(DAGSTER_HOME)/dagster.yaml from the repository's dagster.yaml (zi does this itself before each build).
instance: setup
	$(BIN)/python -m dagster_zi.instance

run: setup runtime-packages
	$(BIN)/zi build

# Linters first: a lint failure fails `make test` (and CI) as a failing test does. Python: ruff (rules and
# formatting in pyproject.toml; `make format` applies both); SQL: sqlfluff (scripts/lint-sql.sh).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/lint-sql.sh

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Both cores: pytest-xdist, one test module per worker (module fixtures such as a demo build stay with their tests).
test: setup test-packages lint
	$(BIN)/pytest -n 2 --dist loadfile

# The everyday lane: lint and every test not marked slow (no whole-pipeline builds, no servers), a few minutes.
test-fast: setup test-packages lint
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow"

# The deployment in the foreground: Dagster UI on http://localhost:$(PORT) (`make dev PORT=3100` for another
# port), daemon (schedule, landing sensor, run queue) and the run worker, all on this data directory's instance
# (what `zi serve` runs on a server).
PORT ?= 3000
dev: setup runtime-packages
	$(BIN)/zi serve --port $(PORT)

bench: setup
	$(BIN)/python bench/zi_bench.py

clean:
	rm -rf target logs
