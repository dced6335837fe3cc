# taxiflow: two commands for a newcomer.
#   make run    start Airflow locally (embedded PostgreSQL, LocalExecutor) with demo data; prints the UI and login
#               (supervisord runs the processes and restarts one that crashes; logs in .airflow/process-logs/)
#               (make run STORAGE=s3: the data in a local S3 server, SeaweedFS)
#   make test   install what the tests need, lint, and run the whole suite (what CI runs)
# More: make docs | make lint | make status | make stop | make bench | make airflow ARGS="dags list" | make compose-env | make compose-check | make clean

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CLIENTS := $(VENV)/clients
PORT   ?= 8080
HOME_DIR := $(CURDIR)/.airflow
export TAXIFLOW_DATA_DIR ?= $(CURDIR)/data
# STORAGE=s3: keep the data in a local SeaweedFS S3 server started and stopped with the stack
# (needs `make dev` for its binary); a TAXIFLOW_DATA_DIR=s3://... of your own is used as it is.
STORAGE ?= local

.PHONY: run stop status airflow docs lint test test-fast test-compose bench bench-quick compose-env compose-images compose-check clean venv dev

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

dev: $(VENV)/.dev-installed $(CLIENTS)/.installed
$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# Airflow 3's official clients (apache-airflow-client 3.x, airflowctl) in a venv of their own: the 3.x
# client shares its name with the Airflow 2 client of requirements-dev.txt. Exact pins, so --no-deps.
$(CLIENTS)/.installed: requirements-clients.txt
	test -x $(CLIENTS)/bin/python || $(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/python -m pip install --quiet --no-deps -r requirements-clients.txt
	touch $@

run: venv $(if $(filter s3,$(STORAGE)),dev)
	$(BIN)/python -m taxiflow.local.cli up --home $(HOME_DIR) --project-dir $(CURDIR) --port $(PORT) --demo --storage $(STORAGE)

stop:
	$(BIN)/python -m taxiflow.local.cli down --home $(HOME_DIR) --project-dir $(CURDIR)

# supervisord's own status: one line per program (state, pid, uptime); exit 0 only if all run
status:
	@test -f $(HOME_DIR)/supervisord.conf || { echo "taxiflow: never started in $(HOME_DIR) (make run)"; exit 1; }
	@$(BIN)/supervisorctl -c $(HOME_DIR)/supervisord.conf status || { rc=$$?; \
	  [ $$rc != 4 ] || echo "taxiflow: not running (supervisord does not answer; make run starts it)"; exit $$rc; }

airflow:
	. $(HOME_DIR)/env.sh && airflow $(ARGS)

# The documentation site (MkDocs, Material theme) from docs/ into site/, strict: a broken link,
# anchor or page fails it (tests/unit/test_docs.py checks the same in make test).
docs: dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# ruff (pycodestyle, pyflakes, isort, bugbear, pyupgrade, simplify, RUF, Airflow's AIR) and mypy,
# configured in pyproject.toml; `$(BIN)/ruff check --fix .` repairs most findings.
lint: dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# Everything, the docker compose tier (tests/compose/) included: scripts/run_tests.sh runs the tier in
# the background beside the rest. Narrow it with TEST_MARKERS, e.g. `make test TEST_MARKERS="not compose"`.
TEST_MARKERS ?=

test: lint
	bash scripts/services.sh
	bash scripts/browser_deps.sh || echo "make test: the browser test will skip (see above)"
	bash scripts/run_tests.sh $(BIN)/python "$(TEST_MARKERS)" $(PYTEST_ARGS)

test-fast: dev
	$(BIN)/python -m pytest -m "not e2e and not compose" $(PYTEST_ARGS)

bench: venv
	$(BIN)/python benchmarks/run.py

bench-quick: venv
	$(BIN)/python benchmarks/run.py --quick

compose-check:
	bash scripts/validate_compose.sh

# .env for docker compose from .env.example: your uid, generated secrets; idempotent (ARGS="KEY=VALUE ...").
compose-env:
	$(PYTHON) scripts/compose_env.py $(ARGS)

# Where no image registry answers: build (once) the stand-in images and name them in .env.
compose-images: compose-env
	$(PYTHON) scripts/compose_env.py $$(bash scripts/standin-images/ensure.sh)

# Only the docker compose tier (installs Docker if missing; see tests/compose/).
test-compose: dev
	$(BIN)/python -m pytest -m compose $(PYTEST_ARGS)

clean: stop
	rm -rf $(HOME_DIR) data/raw data/warehouse data/landing/*/ data/outputs/*.png data/outputs/*.csv benchmarks/.work
