# Two commands matter: `make demo` (the main job) and `make test`. Both set up .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv constraints test test-quick test-airflow lint format simulator demo airflow stack stack-stop clean

venv: $(STAMP)

# Re-install whenever the dependencies or the pinned versions change. Bytecode is compiled at install: uv does
# not by default, and where PYTHONDONTWRITEBYTECODE is set (CI machines) every Airflow process would otherwise
# compile Airflow from source again, about half the CPU of its start.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt \
	  -e '.[test,dev,stack,s3]'
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The suite spread over worker processes (pytest-xdist), each with its own Airflow home, simulator and budget
# store. Much of it waits on Airflow subprocesses and servers, so more workers than the 2 cores pays. Tests of a
# module whose costly module fixture they share stay on one worker (--dist loadgroup, `xdist_group` markers);
# the end-to-end tests (CODAT_E2E=1: servers, the stack) run first, one at a time, on one worker
# (tests/conftest.py), while the others take the rest.
TEST_WORKERS ?= 4
PARALLEL     := -n $(TEST_WORKERS) --dist loadgroup --durations=15

test: lint
	$(BIN)/pytest $(PARALLEL)

# The inner loop: the tests that start no Airflow command, server stack or browser (no `slow`, no `e2e`), in
# about a minute. `make test` stays the one that counts.
test-quick: venv
	$(BIN)/pytest $(PARALLEL) -m "not slow and not e2e"

# The suite (less the two multi-process tests of the production topology: the stack and the webhook receiver
# killed under load, both run by `make test`) on another Airflow minor and Python, in a venv of their own:
# make test-airflow AIRFLOW_MINOR=3.1 PYTHON_VERSION=3.13 (pins: constraints/airflow-3.1.txt). .ci/run runs the matrix.
AIRFLOW_MINOR  ?= 3.1
PYTHON_VERSION ?= 3.11
test-airflow:
	tools/airflow_minor.sh $(AIRFLOW_MINOR) $(PYTHON_VERSION) $(PARALLEL) --ignore=tests/e2e/test_stack.py \
	  --ignore=tests/e2e/test_webhooks_durability.py

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

# Re-pin after a dependency change: constraints.txt (Airflow 3.3, what make test/demo/stack install on Python 3.11)
# and one file per older minor from constraints/airflow-{minor}.in, resolved for every declared Python.
EXTRAS := --extra test --extra dev --extra openlineage --extra stack --extra s3
constraints: venv
	$(BIN)/uv pip compile -q pyproject.toml $(EXTRAS) --python-version 3.11 -o constraints.txt
	for minor in 3.1 3.2; do \
	  $(BIN)/uv pip compile -q pyproject.toml constraints/airflow-$$minor.in $(EXTRAS) --universal \
	    --python-version 3.11 -o constraints/airflow-$$minor.txt || exit 1; \
	done

clean:
	rm -rf $(VENV) .venv-airflow* .airflow .demo .stack test-artifacts
