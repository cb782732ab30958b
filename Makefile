# seqrl: `make demo` and `make test` work on a fresh machine.
# They create .venv when it is missing, install torch first when it is not importable
# (torch==2.13.0 is a local CPU wheel on the project's machines; elsewhere any torch works),
# then install seqrl with its dev extras.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seqrl-installed
PYTEST_ARGS ?=

.PHONY: demo test install lint peers clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0 || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m seqrl demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check core backbone data envs agents world_models tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info

# The peers that benchmarks/ and examples/ compare against, each in its own environment:
# d3rlpy 2.8.1 pins gymnasium 1.0.0; dilated-attention-pytorch's pins would replace torch.
peers:
	@test -x .venv-d3rlpy/bin/python || $(PYTHON) -m venv .venv-d3rlpy
	.venv-d3rlpy/bin/pip install -q torch==2.13.0 || .venv-d3rlpy/bin/pip install -q torch
	.venv-d3rlpy/bin/pip install -q d3rlpy==2.8.1 "gymnasium[mujoco]==1.0.0"
	$(PY) -m pip install -q --no-deps --target .venv-dap dilated-attention-pytorch==0.2.0
