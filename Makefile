# The two commands a user needs are `make run` and `make test`; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean checkov chromium screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/logsvc serve

# checkov pins many packages of its own, so it gets a venv of its own; tests/terraform/test_checkov.py runs it.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	@touch $(CHECKOV_STAMP)

# The browser tests (tests/browser) drive Debian's Chromium with Playwright; Playwright's own browser
# downloads are never used. Installed as root, or through sudo.
CHROMIUM := /usr/bin/chromium

chromium:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; }

test: $(STAMP) $(CHECKOV_STAMP) chromium
	$(BIN)/python -m pytest

# The viewer's pictures in docs/images/, taken from a server with sample entries.
screenshots: $(STAMP) chromium
	$(BIN)/python -m tests.browser.screenshots

# The security scan of the Terraform stack alone, as CI's security job runs it.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --config-file deploy/aws/checkov-skips.yaml -d deploy/aws/terraform --skip-download

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# The load generator is wrk (C, from Debian's packages) so that the client does not compete with the
# server for the two cores the way a Python client would. The Lambda handlers are measured after (cold start
# and per-invocation cost against moto's DynamoDB stand-in), then the tiered store's bytes on disk at 1M
# template entries (about 40 s; 10M and the reads at 10M: docs/BENCHMARKS.md, "Storage v2").
bench: $(STAMP)
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.lambda_handlers
	$(BIN)/python -m benchmarks.storage_v2 --sizes --entries 1000000 --json benchmarks/results/storage.json

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
