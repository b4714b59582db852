# Two commands do everything on a fresh machine:
#   make test   - create .venv if missing, install the project with its test extras, lint, run the tests
#   make demo   - run the service on embedded defaults against a synthetic night
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := var/demo

.PHONY: test demo lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/flatqc synth --out $(DEMO)/night --seed 1
	FLATQC_DB_URL=sqlite:///$(DEMO)/flatqc.db $(BIN)/flatqc process $(DEMO)/night/dfs_product \
		--raw $(DEMO)/night/dfs_raw --reference $(DEMO)/night/reference --out $(DEMO)/qc

bench: $(STAMP)
	$(BIN)/python bench/bench_set.py

clean:
	rm -rf var build *.egg-info .pytest_cache .ruff_cache test-artifacts
