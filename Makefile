# Two commands do everything on a fresh machine:
#   make test   - create .venv if missing, install the project with its test extras, lint, run the tests
#   make demo   - run the service on embedded defaults against a synthetic night
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := var/demo

.PHONY: test test-fast demo lint bench clean constraints

# Dependencies at the versions of constraints.txt (the image installs the same ones).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

# After changing dependencies in pyproject.toml: install them unpinned, then pin what got installed.
constraints:
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python deploy/constraints.py > constraints.txt

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Everything (what CI runs): the service and fault suites, PostgreSQL, Chromium and the container image included.
test: $(STAMP) lint
	$(BIN)/python -m pytest --durations=15

# The inner loop (~30 s): no test that starts a service, PostgreSQL or Chromium, nor one that takes more than a few
# seconds (markers service, postgres, browser, container, slow; conftest adds most from the fixtures a test uses).
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest --durations=15 -m "not service and not slow and not postgres and not browser and not container"

demo: $(STAMP)
	$(BIN)/python -m flatqc.demo --root $(DEMO)

bench: $(STAMP)
	$(BIN)/python -m bench.bench_set

clean:
	rm -rf var build *.egg-info .pytest_cache .ruff_cache test-artifacts
