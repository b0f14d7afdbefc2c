# Two commands for a fresh machine (each sets itself up):
#   make book   - the main job: quick CPU build of the book (until the book exists: a quick CPU
#                 training run that writes its run record under runs/quick)
#   make test   - the test suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# real data for tests and quick runs: $DIRLIB_DATA, else ../shared/data when it exists
DIRLIB_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export DIRLIB_DATA

.PHONY: setup test book quick clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

quick: $(VENV)/.installed
	$(PY) -m dirlib train --dataset synthetic --method vanilla --epochs 5 --seed 0 --out runs/quick/synthetic-vanilla
	@if [ -n "$(DIRLIB_DATA)" ]; then \
	  $(PY) -m dirlib train --dataset sts-b-dir --method vanilla --epochs 1 --seed 0 --out runs/quick/sts-b-dir-vanilla; \
	else echo "DIRLIB_DATA not set: skipped the STS-B-DIR quick run"; fi

book: quick

clean:
	rm -rf runs/quick
