# mentor-connections — every target creates/updates .venv on its own first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
## `make test` runs the test files on this many processes (pytest-xdist; each starts its own local stack).
TEST_WORKERS ?= 2

.PHONY: venv test test-fast demo lint fmt bench up clean synth openapi layer
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 18,20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --disable-pip-version-check -e . --group dev --group infra
	@# urllib3-future (caldav → niquests) copies itself over urllib3 at every interpreter start through a .pth
	@# file; Lambda never runs that file, so here too botocore gets the real urllib3 of the lock and niquests
	@# runs on urllib3_future (README, Deploying → Build; tests/unit/functions/test_import_graph.py checks it).
	rm -f $(VENV)/lib/python*/site-packages/urllib3_future.pth
	$(PY) -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
	  "urllib3==$$(sed -n 's/^urllib3==\([0-9.]*\).*/\1/p' requirements-lambda.core.txt)"
	@touch $(STAMP)

## The full suite (unit, integration against moto/Radicale/emulators, e2e through the local gateway, infra synth).
test: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## Unit tests only.
test-fast: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

## Start the local stack, run the whole story end to end, print it.
demo: $(STAMP)
	$(PY) -m devstack demo

## Regenerate docs/openapi.json from the code (a test fails while it is stale).
openapi: $(STAMP)
	$(PY) -m devstack openapi

## Start the local stack and keep it running (Ctrl-C to stop).
up: $(STAMP)
	$(PY) -m devstack up

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared functions devstack infra bench
	$(VENV)/bin/lint-imports

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m bench

## Build the Lambda layers (arm64, Python 3.13), one per group of requirements-lambda.<group>.txt, into build/lambda-layers/.
## Downloads only wheels missing from the build/wheelhouse cache; a no-op while the lock is unchanged.
layer: $(STAMP)
	$(PY) -m infra.layer.build

## Synthesise the CloudFormation template into cdk.out/ (cdk-nag runs as part of it; a finding fails).
## Context: SYNTH_ARGS="-c stage=prod -c jwtIssuer=… …" (README, Deploying). LAYER=placeholder skips
## the layer build (offline, no wheelhouse) and synthesises a labelled, NOT deployable template.
LAYER ?= build
synth: $(STAMP) $(if $(filter placeholder,$(LAYER)),,layer)
	$(PY) -m infra.app -c layer=$(LAYER) $(SYNTH_ARGS) && ls cdk.out/*.template.json

clean:
	rm -rf $(VENV) .devstack cdk.out .mypy_cache .ruff_cache .hypothesis
