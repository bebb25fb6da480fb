# Two commands matter: `make demo` (the main job) and `make test`. Both set up .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint format simulator demo airflow stack stack-stop clean

venv: $(STAMP)

# Re-install whenever the dependencies or the pinned versions change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[test,dev,stack]'
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

simulator: venv
	$(BIN)/python -m airflow_provider_codat.simulator --port 8765

demo: venv
	$(BIN)/python tools/demo.py

airflow: venv
	$(BIN)/python tools/airflow_ui.py

# Airflow as production runs it (Postgres, Redis, Celery workers, a triggerer) without Docker, under .stack/.
stack: venv
	$(BIN)/python tools/stack.py start

stack-stop:
	$(BIN)/python tools/stack.py stop

clean:
	rm -rf $(VENV) .airflow .demo .stack test-artifacts
