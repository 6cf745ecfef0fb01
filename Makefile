# One target per chore. Every target works on a fresh machine with Python 3.11 and pip.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-uv/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test processes (pytest-xdist): most tests wait on timers and sockets, so two keep both cores
# busy; 0 runs everything in this one process (easier to debug).
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist worksteal

.PHONY: install run test test-pg lint format coverage docker-check wheel bench bench-full fuzz chaos clean

$(UV):
	python3 -m venv .venv-uv && .venv-uv/bin/pip install --quiet uv

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

install: $(VENV)/.installed ## create .venv from the committed lock file

run: install ## serve on :8080 (embedded PostgreSQL unless DATABASE_URL is set)
	$(VENV)/bin/task-scheduler serve

test: install ## the whole suite with coverage (embedded PostgreSQL unless TEST_DATABASE_URL is set)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-pg: install ## integration tests (every SQL statement) against the PostgreSQL server on 127.0.0.1:5432
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres} \
		$(PY) -m pytest $(XDIST) --no-cov tests/integration $(addprefix --ignore=tests/integration/,$(NOT_SQL) $(ONCE)) $(PYTEST_ARGS)

# Integration tests that add no SQL of their own (HTTP clients, the SSRF resolver, signatures,
# tracing, the CLI over the API, fuzzing): test-pg leaves them to `make test`.
NOT_SQL = test_fuzz.py test_client_hostile_service.py test_stateful_api.py test_poison_requests.py test_hostile_receivers.py test_webhook_client.py \
	test_ssrf_resolver.py test_ssrf_delivery.py test_signature_verification.py test_tracing.py \
	test_client_library.py test_api_client.py test_bench_tools.py test_bench_outage.py test_cli.py \
	test_cli_schedules.py
# Hunts and benchmark tools: the statements they run are the service's, which the other tests run
# on both servers; test-pg leaves them to `make test` too (they took about 2 of its 6 minutes).
ONCE = test_hostile_rows.py test_hostile_settings.py test_bench_bulk_cancel.py test_bench_scale.py \
	test_bench_schedules.py

lint: install ## checks only, never rewrites
	$(VENV)/bin/ruff check src tests bench chaos
	$(VENV)/bin/ruff format --check src tests bench chaos
	$(VENV)/bin/mypy --strict src tests/support

format: install ## rewrite files with ruff
	$(VENV)/bin/ruff check --fix src tests bench chaos
	$(VENV)/bin/ruff format src tests bench chaos

coverage: install ## HTML coverage report in htmlcov/
	$(PY) -m pytest --cov-report=html $(PYTEST_ARGS)
	@echo "open htmlcov/index.html"

docker-check: install ## static checks of Dockerfile and compose.yaml (no Docker engine here)
	bash scripts/docker-check.sh

wheel: install ## the installable package in dist/ (what the Docker image installs)
	$(UV) build --wheel --out-dir dist

bench: install ## quick benchmarks (a few minutes): table on stdout, JSON in bench/results/
	$(PY) -m bench

bench-full: install ## also 100,000-timer bursts and recovery (the default and 1 process), slow-host isolation, three instances, 10M-row scale, a bulk cancel of 1M timers (~30 min)
	$(PY) -m bench --full

fuzz: install ## schemathesis against the API's OpenAPI schema, FUZZ_EXAMPLES (500) new random examples per operation; STATEFUL_EXAMPLES (200) new random API call sequences
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} STATEFUL_EXAMPLES=$${STATEFUL_EXAMPLES:-200} \
		STATEFUL_STEPS=$${STATEFUL_STEPS:-80} $(PY) -m pytest --no-cov -ra --timeout=1800 \
		tests/integration/test_fuzz.py tests/integration/test_stateful_api.py $(PYTEST_ARGS)

chaos: install ## kill -9, database restarts, cut connections, bad receivers, skewed clocks, floods, hostile data, schedules under kill -9 (~26 min)
	$(PY) -m chaos $(CHAOS_ARGS)
	HOSTILE_EXAMPLES=$${HOSTILE_EXAMPLES:-200} POISON_EXAMPLES=$${POISON_EXAMPLES:-1000} \
		HOSTILE_ROW_EXAMPLES=$${HOSTILE_ROW_EXAMPLES:-300} FUZZ_RANDOM=1 $(PY) -m pytest --no-cov -q \
		--timeout=3600 tests/integration/test_hostile_receivers.py tests/integration/test_webhook_client.py \
		tests/integration/test_poison_requests.py tests/integration/test_hostile_rows.py

clean:
	rm -rf $(VENV) .venv-uv htmlcov .coverage .pytest_cache .mypy_cache .ruff_cache .data dist
