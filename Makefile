# phe-trace — every target sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[device,server,postgres,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/phe-trace demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks protocol_spec
	$(BIN)/mypy src

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/crypto.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
