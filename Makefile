# Two entry points for a fresh clone: `make demo` and `make test` (`make test-fast` for the in-process tests only).
# Each installs what it needs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# uv installs the package and the test suite's reference servers in a fraction of pip's time; its pin is the one in
# pyproject.toml's dev extra.
UV_PIN := $(shell grep -o '"uv==[^"]*"' pyproject.toml | head -1 | tr -d '"')
STAMP := $(VENV)/.installed
# pytest-xdist workers: on 2 cores, 4 keep both busy while some tests wait on their subprocesses.
WORKERS ?= 4
# Bytecode caches stay on whatever the environment says: without them every gateway and backend the tests start
# compiles the project's sources again (about 0.2 s of CPU each, hundreds of starts), and every pytest worker
# rewrites the test modules' asserts again (about 4 s each). `make test` compiles the project's sources, and
# collects the tests once (which compiles what they import), while lint runs: on a fresh clone, the workers and the
# processes starting at once would each compile the same modules.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-fast lint install clean bench redis-server chromium prometheus nginx

# The venv with uv in it, and then the package: two steps, so that `make test` can install the interoperability
# servers (which need only uv) while the package installs. uv compiles nothing it installs: Python compiles what a
# program imports when it first does, and `make test` has that done once before its workers start.
$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet '$(UV_PIN)'

$(STAMP): pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mcp-gateway demo

lint: $(STAMP)
	$(BIN)/ruff check gateway backends tests bench
	$(BIN)/ruff format --check gateway backends tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The reference servers and clients the interoperability tests run (pinned in tests/support/interop.py), installed
# once into tests/.cache/interop while the package installs and lint runs (tests.support.interop needs only the
# standard library and uv); later runs need no registry.
test: $(UV) redis-server chromium prometheus nginx
	@$(BIN)/python -m tests.support.interop & installs=$$!; \
	$(MAKE) --no-print-directory install || { kill $$installs; exit 1; }; \
	{ $(BIN)/python -m compileall -q gateway backends bench tests/support && \
		$(BIN)/pytest --collect-only -q -n 0 >/dev/null; } & compiled=$$!; \
	$(MAKE) --no-print-directory lint; linted=$$?; \
	wait $$installs || { echo "installing the interoperability servers failed" >&2; exit 1; }; \
	wait $$compiled || { echo "compiling the sources the tests import failed" >&2; exit 1; }; \
	test $$linted -eq 0 || exit $$linted; \
	$(BIN)/pytest -n $(WORKERS)

# The in-process lane: no subprocess, no reference server, no Redis (see tests/support/lanes.py).
test-fast: $(STAMP)
	$(BIN)/pytest -m "not processes" -n $(WORKERS)

# The rate-limit tests run a real Redis (a shared budget across replicas): Debian's package, installed when missing.
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }

# The cluster tests (tests/test_cluster.py) put a real load balancer in front of three replicas: Debian's nginx,
# installed when missing (its binary is in /usr/sbin, which a non-root PATH may lack).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; }

# The dashboard test drives a real headless browser: Debian's Chromium (Playwright downloads no browser of its own),
# installed when missing, with its recommended fonts so the screenshot has text.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The metrics test has a real Prometheus scrape /metrics (tests/test_telemetry_e2e.py): Debian's package, installed
# when missing.
prometheus:
	@command -v prometheus >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# The benchmark suite (about 15 minutes on 2 cores; writes bench/results/<date>.md and .png). BENCH_ARGS=--quick
# for a shorter run; peers are installed into bench/.cache on first use.
bench: $(STAMP)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
