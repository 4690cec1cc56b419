# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench model eval clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/omnirouter dev

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy streams channels router session schemas

bench: $(STAMP)
	$(BIN)/python bench/e2e.py

model: $(STAMP)
	$(BIN)/omnirouter train

eval: $(STAMP)
	$(BIN)/omnirouter eval streams/nlu/data/heldout.jsonl

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
