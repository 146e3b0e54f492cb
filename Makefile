# One entry point for developers and CI. `make test` is the test command.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services services-down test test-unit test-faults lint format run bench bench-dump bench-delta bench-update profile clean

# setup.py compiles the normaliser and extractor/rawshape.py: an edit reinstalls (and recompiles).
$(STAMP): pyproject.toml requirements.lock setup.py common/normalise.py common/dumpshape.py \
		extractor/rawshape.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

services: $(STAMP)
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: services
	$(BIN)/pytest $(PYTEST_ARGS)

# Fault and bad-input suite (tests/faults): restarts the servers, takes several minutes.
test-faults: services
	RUN_FAULTS=1 $(BIN)/pytest tests/faults $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

run: services
	$(BIN)/python scripts/run_pipeline.py

bench: services
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# A dump shaped like the real one at BENCH_DUMP_PERCENT % of its size through the whole
# pipeline, then at BENCH_DUMP_GROWTH % to check the rate holds (empty: skip).
BENCH_DUMP_PERCENT ?= 1
BENCH_DUMP_GROWTH ?= 5
bench-dump: services
	$(BIN)/python -m bench.pipeline --percent $(BENCH_DUMP_PERCENT) \
		$(if $(BENCH_DUMP_GROWTH),--growth $(BENCH_DUMP_GROWTH))

# A monthly update of that dump (1 % changed, 0.5 % added and removed) as a delta against
# a full re-publish, the extractor alone, side by side.
bench-delta: services
	$(BIN)/python -m bench.delta_bench --percent $(BENCH_DUMP_PERCENT) $(BENCH_ARGS)

# The same update through the whole pipeline (extractor and both consumers), delta against
# a full re-publish of B over A, side by side.
bench-update: services
	$(BIN)/python -m bench.update_pipeline --percent $(BENCH_DUMP_PERCENT) $(BENCH_ARGS)

# Where a consumer's CPU goes (py-spy), e.g. PROFILE_ARGS="--type releases --mode batch".
profile: services
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info *.so common/*.so
