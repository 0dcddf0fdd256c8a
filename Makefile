# Set-up and the everyday commands. Everything runs from a virtual environment in .venv that
# `make` creates on first use.
#
# TORCH is the torch requirement installed before the package. The default, 2.13.0, is a small
# CPU build that the project's CI machines hold on local disk; on a GPU machine choose the build
# that fits it, e.g.  make demo TORCH='torch>=2.3'
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed   ## the main job on embedded data: the paper's TwoMoon table and figure
	$(BIN)/mke-theory twomoon --out runs/twomoon --force --figure runs/twomoon/twomoon.png

test: $(VENV)/.installed   ## the test suite (CI runs exactly this)
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check mke_theory mke_experiments tests benchmarks

bench: $(VENV)/.installed  ## speed benchmarks (print ratios measured side by side)
	$(BIN)/python benchmarks/bench_twomoon.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
