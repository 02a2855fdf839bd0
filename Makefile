# One-command workflows. `make up` starts the suite, `make test` runs every check.
# Both create .venv and install the pinned dependencies on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
INSTALLED := $(VENV)/.installed
TOOLS := node_modules/.installed
TS := sdk/typescript
TS_TOOLS := $(TS)/node_modules/.installed

.PHONY: up test lint typecheck protos protos-check unit clean ts-sdk

$(INSTALLED): requirements/runtime.txt requirements/dev.txt requirements/constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(TS_TOOLS): $(TS)/package.json $(TS)/package-lock.json
	npm --prefix $(TS) ci --no-audit --no-fund --loglevel=error
	touch $@

# The TypeScript SDK, compiled with tsc --strict (its tests run it against the suite).
ts-sdk: $(TS_TOOLS)
	cd $(TS) && node_modules/.bin/tsc -p tsconfig.json

up: $(INSTALLED)
	$(BIN)/python -m services.devstack

protos: $(INSTALLED) $(TS_TOOLS)
	$(BIN)/python scripts/gen_protos.py
	$(BIN)/python scripts/gen_sdk.py
	$(BIN)/python scripts/gen_api_docs.py
	$(BIN)/python -m services.rollout.xds
	cd $(TS) && node_modules/.bin/buf generate --template buf.gen.yaml

protos-check: $(INSTALLED)
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/python scripts/gen_sdk.py --check
	$(BIN)/python scripts/gen_api_docs.py --check

lint: $(INSTALLED) $(TOOLS)
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

test: lint typecheck protos-check ts-sdk
	$(BIN)/pytest

unit: $(INSTALLED)
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache
