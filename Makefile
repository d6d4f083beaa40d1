# Two commands on a fresh machine: `make demo` (the whole method end to end) and `make test`.
# Each creates the virtual environment .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast lint bench clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m iefvad.cli.demo

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest

# Everything but the end-to-end runs marked slow (scripts in subprocesses, the demo).
test-fast: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(PY) bench/train.py --size small

clean-venv:
	rm -rf $(VENV)
