# The two commands a fresh machine needs (see README):
#   make demo   -> build .venv if missing, run Airflow (api-server, scheduler, dag-processor, triggerer) + the demo API with our DAGs
#   make stop   -> stop what an earlier `make demo` left running (the PID file .airflow/demo.pid)
#   make test   -> build .venv if missing, run the whole test suite
PYTHON ?= python3.11
VENV   := .venv
UV     := $(VENV)/bin/uv
PY     := $(VENV)/bin/python
UV_VERSION := 0.9.30

.PHONY: demo stop test lint venv bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install -q --python $(PY) -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m airflow_sync_provider.demo.up

stop: venv
	$(PY) -m airflow_sync_provider.demo.up --stop

test: venv
	$(PY) -m pytest -ra -n 2 --dist loadfile --durations=20

lint: venv
	$(VENV)/bin/ruff check airflow_sync_provider dags tests bench
	$(VENV)/bin/ruff format --check airflow_sync_provider dags tests bench
	$(VENV)/bin/mypy

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .airflow
