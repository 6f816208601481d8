# Two entry points that work on a fresh machine: `make experiment` (the main job) and `make test`.
# Both create .venv on first use. TORCH_SPEC pins a torch that is satisfiable offline here (CPU build 2.13);
# override it elsewhere, e.g. `make TORCH_SPEC=torch test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PRESET ?= cpu

.PHONY: install experiment evaluate test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

experiment: install
	$(VENV)/bin/polyret experiment --preset $(PRESET)

evaluate: install
	$(VENV)/bin/polyret evaluate --model builtin:me5-small --benchmark xquad-r:test --output runs/eval-me5-small

test: install
	$(PY) -m pytest -q
