# `make run`: a demo server on SQLite. `make test`: the whole suite. See README.md.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_FILE ?= examples/demo-tenant.json

export DEBUG ?= true

.PHONY: run serve test lint format install demo bench fault clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) manage.py migrate --verbosity 0
	$(PY) manage.py provision $(DEMO_FILE) --demo --host http://$(HOST):$(PORT)

# One background worker beside the server (callbacks, purges), stopped with it.
run: demo
	@$(PY) manage.py run_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py runserver $(HOST):$(PORT)

# The production server (docs/deploy.md): gunicorn with the repository's gunicorn.conf.py,
# settings from the environment, no migrations, no provisioning. DEBUG is off unless the
# environment turns it on.
serve: DEBUG := $(if $(filter environment,$(origin DEBUG)),$(DEBUG),false)
serve: install
	HOST=$(HOST) PORT=$(PORT) $(VENV)/bin/gunicorn -c gunicorn.conf.py

# pytest exits 5 when it collects nothing: that is a failure here, never a pass.
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DEBUG=true $(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Needs PostgreSQL and Redis running (see docs/performance.md). BENCH_ARGS="--scaling --plot …"
# Kill a scratch PostgreSQL, then a scratch Redis, under ingest load (never the shared
# ones); prints what clients saw and fails if an acknowledged entry was lost. As root.
fault: install
	$(PY) bench/fault.py $(FAULT_ARGS)

bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/ingest_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache
