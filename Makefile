# The two entry points (README): `make demo` and `make test`. Both create or reuse the
# project-local virtualenv .venv and install the project from its own files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
WORKDIR ?= .diffexplainer/demo
PRESET ?= cpu-small
PYTEST_ARGS ?=

.PHONY: demo test lint venv bench bench-agent bench-faithfulness bench-faithfulness-ceiling bench-gates bench-cf bench-compile clean

venv: $(STAMP)

# The kubeflow extra (kfp) is installed too, so its tests run (kubernetes client 30.1 then).
# torch is installed first and pinned to 2.13.0 so pip takes the local CPU wheel and the
# resolver never backtracks into a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,kubeflow]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/diffexplainer demo --workdir $(WORKDIR) --preset $(PRESET)

# static checks first (config in pyproject.toml): a finding fails `make test`, so CI runs them too
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/diffae.py

# agent fidelity across teacher seeds on the latents of a finished `make demo` (WORKDIR)
bench-agent: $(STAMP)
	$(PY) benchmarks/agent_fidelity.py --workdir $(WORKDIR)

# faithfulness (issue 10): black boxes F / M / R, model contrast, randomisation, reliance, on a finished
# `make demo` (WORKDIR); never retrains the DiffAE. CASES external cases (>= 30 for the issue's targets).
CASES ?= 30
bench-faithfulness: $(STAMP)
	$(PY) benchmarks/faithfulness.py --workdir $(WORKDIR) --preset $(PRESET) --cases $(CASES)

# the ceiling of faithfulness's model contrast (issue 10): the oracle map (integrated gradients from the stack with
# every planted component removed) of black boxes retrained at each of SIZES px on the re-rendered cohorts; no DiffAE
SIZES ?= 32,64
bench-faithfulness-ceiling: $(STAMP)
	$(PY) benchmarks/faithfulness_ceiling.py --workdir $(WORKDIR) --preset $(PRESET) --cases $(CASES) --image-sizes $(SIZES)

# gate stability (issue 11): teacher + agent retrained with SEEDS seeds on a finished `make demo`'s
# cached latents and inversions; every gate decided as the pipeline does; negative controls.
SEEDS ?= 10
CF_SEEDS ?= 3
SEED_OFFSET ?= 0
bench-gates: $(STAMP)
	$(PY) benchmarks/gate_stability.py --workdir $(WORKDIR) --preset $(PRESET) --seeds $(SEEDS) --cf-seeds $(CF_SEEDS) \
		--seed-offset $(SEED_OFFSET)

# counterfactual cost (issue 13): UNet evaluations per patient vs validity over DDIM steps, depth, random control
# and alpha search, on the same cases of a finished `make demo` (WORKDIR)
bench-cf: $(STAMP)
	$(PY) benchmarks/cf_cost.py --workdir $(WORKDIR) --preset $(PRESET)

# offline compilation time of both orchestrators (issue 14: < 60 s each), paper preset, side by side
bench-compile: $(STAMP)
	$(PY) benchmarks/compile.py

clean:
	rm -rf .diffexplainer .pytest_cache .mypy_cache .ruff_cache
