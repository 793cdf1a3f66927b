# phe-trace — every target sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench audit clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[device,server,postgres,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/phe-trace demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks protocol_spec
	$(BIN)/ruff format --check src tests benchmarks protocol_spec
	$(BIN)/mypy src

test: lint
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)  # portal browser tests
	$(BIN)/python -m pytest -n 3 --dist loadfile  # tests wait on servers and processes: 3 at a time
	$(BIN)/python protocol_spec/check_traceability.py

# Mutation-proven traceability: each mutant of protocol_spec/mutants/ breaks one requirement
# in a scratch copy of src/; the tests citing that requirement must fail (ARGS: e.g. --only KEY-4).
audit: $(STAMP)
	$(BIN)/python protocol_spec/audit.py $(ARGS)

# Every benchmark script, small runs (--quick); run one directly for the full workload.
bench: $(STAMP)
	@for f in benchmarks/[a-z]*.py; do \
		echo "== $$f --quick" >&2; \
		$(BIN)/python $$f --quick || exit 1; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
