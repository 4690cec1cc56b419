# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test browser test-containers lint audit lock chaos fuzz bench model eval clean

# Installed from the lock, every file checked against its hash; then our package alone.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Refresh both locks after a change to pyproject.toml (dev + runtime here, runtime only for
# the image); machine-local index options are not written into them.
LOCK_FLAGS := --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	test -x $(BIN)/pip-compile || $(BIN)/python -m pip install -q pip-tools
	$(BIN)/pip-compile -q $(LOCK_FLAGS) --upgrade --extra dev -o requirements.lock pyproject.toml
	$(BIN)/pip-compile -q $(LOCK_FLAGS) --upgrade -o deploy/requirements.lock pyproject.toml

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
	$(BIN)/mypy deploy/supply_chain.py
	$(MAKE) --no-print-directory audit

# Floors and lock above known advisories, base image pinned, pip-audit over the lock.
audit: $(STAMP)
	$(BIN)/python deploy/supply_chain.py

# Opt-in suites (docs/reliability.md); `make test` runs their short forms.
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --n 10000 --rate 20

fuzz: $(STAMP)
	$(BIN)/python bench/fuzz.py

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
	$(BIN)/python -m training.nlu.cli eval training/nlu/data/real/web_test_frozen.jsonl
	$(BIN)/python -m training.nlu.cli eval training/nlu/data/heldout.jsonl

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
