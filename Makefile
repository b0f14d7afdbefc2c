# Two commands for a fresh machine (each sets itself up):
#   make book   - the main job: the quick CPU build of the book into book/_build/html
#   make test   - the test suite (CI runs it and `make check` through .ci/run)
#   make check  - the committed artefacts against the stored records
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# real data for tests and quick runs: $DIRLIB_DATA, else ../shared/data when it exists
DIRLIB_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export DIRLIB_DATA
# the book's parameter set: quick | full | FILE.json
BOOK_PARAMS ?= quick

.PHONY: setup test check book quick clean browser lab

# one environment for the library, the tests and the book (pinned torch/torchvision)
$(VENV)/.installed-all: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,book]'
	touch $@

setup: $(VENV)/.installed-all

# headless Chromium for the page checks: installed in CI (root, Debian) when missing;
# elsewhere the browser tests skip and the HTML-parse checks still run
browser:
	@if [ -n "$$CI" ] && { ! command -v chromium || ! command -v chromedriver; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "WARNING: could not install chromium: browser checks will skip"; fi

# two test workers (pytest-xdist), each taking whole files, so a module's data loads once
TEST_WORKERS ?= 2
test: $(VENV)/.installed-all browser
	$(PY) -m pytest -q --durations=15 -m "not artefacts" -n $(TEST_WORKERS) --dist loadfile

# the committed artefacts (generated blocks, tables, docs, bench files) against the stored records
check: $(VENV)/.installed-all
	$(PY) -m pytest -q -m artefacts

# JS for offline pages (npm; without it the pages load MathJax and widgets from CDNs), then
# the notebooks (papermill, $(BOOK_PARAMS) parameters) and Jupyter Book 1
book: $(VENV)/.installed-all
	scripts/vendor_js.sh || echo "WARNING: scripts/vendor_js.sh failed: the pages will load MathJax and the widget manager from CDNs"
	$(PY) -m dirlib book build --params $(BOOK_PARAMS)

# JupyterLab on the MyST notebooks (paired through jupytext: a .md opens as a notebook), for the
# pages that need a live kernel (the Explore page's "train your own")
lab: $(VENV)/.installed-all
	$(VENV)/bin/jupytext-config set-default-viewer markdown myst >/dev/null 2>&1 || true
	cd notebooks && ../$(VENV)/bin/jupyter lab

# a quick CPU training run that writes its run record under runs/quick
quick: $(VENV)/.installed-all
	$(PY) -m dirlib train --dataset synthetic --method vanilla --epochs 5 --seed 0 --out runs/quick/synthetic-vanilla

clean:
	rm -rf runs/quick book/_build book/_exec
