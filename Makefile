# The two commands of the README:
#   make demo   sets up .venv and runs the headline recipe (tiny T5, demo catalog, CPU)
#   make test   sets up .venv and runs the test suite
# torch==2.13.0 is installed first: it is the CPU wheel on local disk; pyproject.toml caps
# torch below 2.14 so nothing later replaces it with a multi-GB CUDA build. setuptools is
# installed into .venv because a test pip-installs the example plugin offline with
# --no-build-isolation.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup demo test lint
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/advx run recipes/ppo_cls_loss.yaml

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check core plugins tests benchmarks
