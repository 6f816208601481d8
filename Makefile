# Two entry points that work on a fresh machine: `make experiment` (the main job) and `make test`.
# Both create .venv on first use. TORCH_SPEC pins a torch that is satisfiable offline here (CPU build 2.13);
# override it elsewhere, e.g. `make TORCH_SPEC=torch test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PRESET ?= cpu

.PHONY: install experiment evaluate test test-slow lint test-floor bench
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

# The quick suite: every test but those marked slow (end-to-end runs of a real model, minutes each).
test: install
	$(PY) -m pytest -q -m "not slow"

# The slow tests alone; CI runs both (`test` then `test-slow`): `pytest` with no -m runs everything.
test-slow: install
	$(PY) -m pytest -q -m slow

# ruff lint + format check (configured in pyproject.toml; the same hooks run in .pre-commit-config.yaml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The dependency floor (constraints-floor.txt: the lowest sentence-transformers, transformers, datasets and
# accelerate pyproject.toml allows) in its own .venv-floor, then the quick tests that exercise those libraries:
# the sampler under the trainer, the losses, a tiny training run with checkpoints and resume, evaluation, the CLI.
FLOOR_VENV ?= .venv-floor
FLOOR_TESTS ?= tests/training/test_samplers.py tests/training/test_losses_negatives.py tests/training/test_train.py tests/evaluation/test_evaluate.py \
	tests/test_cli.py
test-floor:
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install -q --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(FLOOR_VENV)/bin/python -m pip install -q -c constraints-floor.txt -e ".[test]"
	$(FLOOR_VENV)/bin/python -m pip list 2>/dev/null | grep -iE '^(sentence-transformers|transformers|datasets|accelerate) '
	$(FLOOR_VENV)/bin/python -m pytest -q -m "not slow and not distributed" $(FLOOR_TESTS)
