# Two commands for a fresh clone:
#   make demo   - set up .venv and run the nightly pipeline end to end on the embedded demo
#   make test   - set up .venv and run every test (SQLite and PostgreSQL)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: setup demo test bench serve clean

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/userops demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

serve: $(STAMP)
	$(BIN)/userops serve

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) output/*.db
