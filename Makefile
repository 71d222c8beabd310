# ZI Warehouse. The README's two commands: `make run` (build everything) and `make test`.
# Every target sets up what it needs (virtual environment, dependencies, dbt manifest), idempotently.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export ZI_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1
DBT_SOURCES := dbt_project.yml $(shell find models seeds dbt_project -type f 2>/dev/null)

.PHONY: setup run test dev bench system-packages clean

setup: $(VENV)/.installed target/manifest.json $(DAGSTER_HOME)/dagster.yaml

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

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# System packages some tests need (PostgreSQL server binaries); installs only what is missing.
system-packages:
	scripts/install-system-packages.sh

run: setup
	$(BIN)/zi build

test: setup system-packages
	$(BIN)/pytest

dev: setup
	$(BIN)/dagster dev -m dagster_zi.definitions

bench: setup
	$(BIN)/python -m zi_warehouse.bench

clean:
	rm -rf target logs $(DAGSTER_HOME)
