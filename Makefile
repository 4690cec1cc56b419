# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test browser test-containers lint bench model eval clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/omnirouter dev

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The browser tests drive Debian's chromium (never a test tool's own download): installed here
# when we are root with apt, otherwise named so the user can install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk >/dev/null \
	    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk >/dev/null; }; \
	  else echo "make test needs the Debian packages chromium and fonts-noto-cjk (apt-get install chromium fonts-noto-cjk)" >&2; exit 1; fi; }

# Opt-in, needs a Docker engine: the integration suite against Apache Kafka and Redis containers.
test-containers: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,containers]'
	OMNIROUTER_TESTCONTAINERS=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy streams channels router session schemas
	$(BIN)/mypy --explicit-package-bases bench
	$(BIN)/mypy training

# Each benchmark prints its figures and the machine; docs/performance.md keeps the results.
bench: $(STAMP)
	$(BIN)/python bench/e2e.py --rate 100 --n 1000
	$(BIN)/python bench/nlu.py
	$(BIN)/python bench/router.py
	$(BIN)/python bench/session.py
	$(BIN)/python bench/stages.py
	$(BIN)/python bench/channels.py
	$(BIN)/python bench/schemas.py
	$(BIN)/python bench/pii.py
	$(BIN)/python bench/surge.py
	$(BIN)/python bench/analytics.py
	$(BIN)/python bench/figures.py
	$(BIN)/python bench/knowledge.py
	$(BIN)/python bench/bot.py
	$(BIN)/python bench/limits.py

model: $(STAMP)
	$(BIN)/python -m training.nlu.cli train

# The frozen real-text set first (issue 14: the figure that counts), then the authors' own sets.
eval: $(STAMP)
	$(BIN)/python -m training.nlu.cli eval training/nlu/data/real/atec_test_frozen.jsonl
	$(BIN)/python -m training.nlu.cli eval training/nlu/data/heldout.jsonl

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
