# `make run` and `make test` work on a fresh clone: each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp

.PHONY: run test lint smoke clean

# pip byte-compiles at install: where PYTHONDONTWRITEBYTECODE is set (as on this project's machines),
# --no-compile would make every process compile torch from source (docs/benchmarks.md).
# The main job needs the package alone; the tests and lint add the dev extras on top (about 30 s),
# so a first `make run` does not wait for pytest, ruff, onnx, timm and psycopg.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

# The main job: search resnet50's coefficients for twice its MACs on the built-in data.
run: $(STAMP)
	$(BIN)/scaler search --baseline resnet50 --budget 2x

# The same job at smoke size (about a minute).
smoke: $(STAMP)
	$(BIN)/scaler search --baseline resnet50 --budget 2x --preset smoke --out runs/resnet50-2x-smoke

# Two workers, one thread each (tests/conftest.py): the suite's wall time on 2 cores is about halved.
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 2

# ruff with the rule set in pyproject.toml; CI runs it before the tests.
lint: $(DEV_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
