# camlab — the two commands of the README, plus helpers.
#   make run   executes every notebook on its default parameters into build/notebooks/ (+ HTML)
#   make run-full  the same on the large parameters (all dev images, every method; hours on a CPU)
#   make book  builds the book (Sphinx: chapters, search, API reference) from build/notebooks into build/book
#   make test  runs the whole test suite, notebooks included
#   make test-fast  the tests that need neither the pretrained weights nor the shared images (seconds)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Images: $CAMLAB_DATA if set, else ../shared/data next to this checkout, else data/.
CAMLAB_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(abspath data))
export CAMLAB_DATA
# OpenMP threads that wait passively do not stall beside other work: notebook 03 took 38 s idle
# and 51 s beside one busy process with PASSIVE, 40 s and over 200 s with torch's default
# (benchmarks/bench_stall.py, RESULTS.md). For everything these targets start; yours wins if set.
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY

.PHONY: venv run run-full book test test-fast lint clean strip

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m camlab.book run notebooks build/notebooks

run-full: venv
	$(PY) -m camlab.book run notebooks build/notebooks-full --full

# the executed notebooks of `make run` as they are (nothing runs again) and docs/ → build/book/index.html;
# fails, saying to run `make run` first, when build/notebooks/ holds no executed notebook
book: venv
	$(PY) -m camlab.book book build/notebooks build/book

# CAMLAB_HEADLESS: nbval runs the notebooks with no front end; the explorer then makes no widgets
# (widget comms can stall nbclient for good, jupyter/nbclient#312). Two workers, one file each at
# a time (nbval runs a notebook's cells in order in one kernel): with .ci/run's one OpenMP thread
# per process they use both cores. Every notebook runs once on its defaults under nbval; five run
# again on other parameters (tests/test_notebooks.py says which, and why). Notebooks first: the
# longest files start first and the short test files fill in at the end.
test: venv
	CAMLAB_HEADLESS=1 $(PY) -m pytest notebooks tests -n 2 --dist loadfile --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider

# the inner loop: tests that use no pretrained weights and no shared images (marked by tests/conftest.py)
test-fast: venv
	CAMLAB_HEADLESS=1 $(PY) -m pytest tests -m fast -q -p no:cacheprovider

lint: venv
	$(PY) -m ruff check camlab tests benchmarks notebooks

strip:
	$(PY) -m camlab.book strip notebooks

clean:
	rm -rf build
