# Two commands are all a fresh Debian/Ubuntu machine with python3, git and make needs:
#   make run    the dashboard, Celery, Redis and (with no OPENAI_API_KEY) the API simulator
#   make test   the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv finds the machine's Python (>= 3.11); it must never download one of its own.
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Installs a Debian/Ubuntu package when the command it provides is missing.
define ensure_package
	@command -v $(1) >/dev/null 2>&1 || [ -x /usr/bin/$(1) ] || { \
	  echo "Installing $(2) from the system packages ..."; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(2) >/dev/null; }
endef

.PHONY: help run test test-fast test-deploy lint format bench deps test-deps

help:
	@echo "make run    start the dashboard (prints the URL and a demo login)"
	@echo "make test   run the whole test suite"
	@echo "make test-fast  the unit tests (tests/unit/: no worker, no browser) but the slow ones, in under a minute"
	@echo "make test-deploy  the deployment in deploy/ (nginx, TLS, gunicorn, PostgreSQL, Celery) and tests/deploy/"
	@echo "make lint   ruff check, format check and mypy"
	@echo "make bench  run the benchmarks in benchmarks/"

$(UV):
	@echo "Installing uv ..."
	python3 -m pip install --user --quiet uv 2>/dev/null || \
	  python3 -m pip install --user --quiet --break-system-packages uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

deps: .venv/.synced

run: deps
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(UV) run --frozen python manage.py run_dashboard

test-deps: deps
	$(call ensure_package,redis-server,redis-server)
	$(call ensure_package,chromium,chromium)

# DJANGO_DEBUG=1 only so that settings need no secret key; tests run with DEBUG off regardless. The 15
# slowest tests are listed at the end: CI has to stay well under 15 minutes, and they are where to look.
test: test-deps
	DJANGO_DEBUG=1 $(UV) run --frozen pytest --durations=15

# The unit tests alone, for the edit-test loop: one process (a private redis-server holds the cache, as in
# production), no Celery worker, no browser, no simulator process; the two marked slow (a sweep of every
# URL, a 20 MB stream: half a minute between them) are left to make test.
test-fast: deps
	$(call ensure_package,redis-server,redis-server)
	DJANGO_DEBUG=1 $(UV) run --frozen pytest tests/unit -q -m "not slow"

# mypy reads the settings (django-stubs' plugin); DJANGO_DEBUG=1 only so that they need no secret key.
lint: deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	DJANGO_DEBUG=1 $(UV) run --frozen mypy

format: deps
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

# Writes docs/benchmarks.md. A subset, or options: make bench BENCH="list poll_load --pass poll_load=--seconds=30".
bench: deps
	DJANGO_DEBUG=1 $(UV) run --frozen python benchmarks/run_all.py $(BENCH)

# The documented team deployment from deploy/ on loopback: nginx with TLS, gunicorn (2 workers),
# PostgreSQL, Redis, 2 Celery workers and beat with production settings; runs tests/deploy/ through it.
# DEPLOY_DATABASE_URL=postgres://... uses that server instead of starting a private cluster.
test-deploy: test-deps
	$(call ensure_package,nginx,nginx)
	$(call ensure_package,openssl,openssl)
	DJANGO_DEBUG=1 DASHBOARD_DEPLOY_TESTS=1 $(UV) run --frozen pytest tests/deploy -p no:cacheprovider
