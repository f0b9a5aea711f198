# Two commands on a fresh machine: `make install`, then `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch that this project's machines carry; a user with a GPU sets TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
# Real CIFAR-10/MNIST for tests and the smoke sweep (read-only, used in place).
RESDEPTH_TEST_DATA ?= $(abspath ../shared/data)
export RESDEPTH_TEST_DATA

.PHONY: install test lint pytest smoke demo paper clean

install:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,ray]"

lint:
	$(VENV)/bin/ruff check resdepth tests
	$(VENV)/bin/ruff format --check resdepth tests
	$(VENV)/bin/mypy resdepth

pytest:
	$(VENV)/bin/pytest -q

test: lint pytest smoke

# Plain and ResNet at two depths, 2 epochs on 512 real CIFAR-10 images (synthetic data without them),
# two runs at a time, so the worker processes load the real data themselves.
smoke:
	rm -rf results/smoke
	if [ -f "$(RESDEPTH_TEST_DATA)/cifar-10-python.tar.gz" ]; then \
	  $(VENV)/bin/resdepth sweep --depth 8,20 --epochs 2 --train-subset 512 --out results/smoke \
	    --data-dir "$(RESDEPTH_TEST_DATA)" --offline --jobs 2; \
	else \
	  $(VENV)/bin/resdepth sweep --depth 8,20 --epochs 2 --dataset synthetic --out results/smoke --jobs 2; \
	fi
	$(VENV)/bin/resdepth report results/smoke
	$(VENV)/bin/resdepth plot results/smoke

demo:
	$(VENV)/bin/resdepth sweep --config experiments/quick.toml
	$(VENV)/bin/resdepth report results/quick
	$(VENV)/bin/resdepth plot results/quick

paper:
	$(VENV)/bin/resdepth sweep --config experiments/paper.toml
	$(VENV)/bin/resdepth report results/paper
	$(VENV)/bin/resdepth plot results/paper --paper

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache results/smoke
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
