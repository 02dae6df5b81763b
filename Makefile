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

# every benchmark in turn at 1,000,000 members, SQLite and PostgreSQL (takes long; see bench/run_all.py):
#   make bench BENCH_ARGS="--customers 100000 --only night,campaigns --lock /tmp/userops-heavy.lock"
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) output/*.db
