# vllmbench: the only commands a newcomer needs.
#   make run           the whole system on its embedded defaults (ports 8000-8005)
#   make test          install what the suite needs and run it
#   make bench         benchmarks that print their figures
#   make cluster       a local Kubernetes control plane (kwok nodes) on loopback
#   make cluster-down  stop it
#   make lint          layer contracts (import-linter)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# `make test` runs the suite on this many pytest-xdist workers (tests/fixtures/parallel.py says how
# tests are shared out); PYTEST_WORKERS=0 runs it serially in one process.
PYTEST_WORKERS ?= 3
export VLLMBENCH_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/vllmbench
# pip's own cache survives between runs on one machine; nothing is downloaded twice.
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test bench lint cluster cluster-down cluster-tools venv ferretdb browser mlflow clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,kube]'
	@touch $@

venv: $(VENV)/.installed

# FerretDB (MongoDB wire protocol, SQLite backend), built once from its Go module.
# Skipped when MONGO_URL points at an existing MongoDB.
ferretdb:
	@if [ -z "$$MONGO_URL" ]; then tools/build-ferretdb.sh >/dev/null; fi

# The MLflow server of the tests and `vllmbench up --mlflow`, in its own venv in the cache (never the project's).
mlflow:
	@tools/install-mlflow.sh >/dev/null

run: venv ferretdb
	$(VENV)/bin/vllmbench up

lint: venv
	$(VENV)/bin/lint-imports

# Kubernetes control-plane binaries (etcd, kube-*, kwok, kustomize), built once from Go modules.
cluster-tools:
	@if [ -x tools/cluster/build.sh ]; then tools/cluster/build.sh; fi

# Headless Chromium (Debian's package) for the report tests; installed once when missing.
browser:
	@tools/install-chromium.sh

test: venv ferretdb cluster-tools browser mlflow
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: venv ferretdb
	$(PY) tests/bench/run_all.py $(BENCH_ARGS)

cluster: venv
	tools/cluster/cluster.sh up

cluster-down:
	tools/cluster/cluster.sh down

clean:
	rm -rf $(VENV) build dist *.egg-info
