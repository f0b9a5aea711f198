# `make test` and `make demo` each work as the first command in a fresh clone: they install what is
# missing first (a virtualenv in .venv), and nothing more once it is there.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch that this project's machines carry; a user with a GPU sets TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
# Where torch comes from, if not the default index (GitHub Actions: PyTorch's CPU-only wheels).
TORCH_INDEX ?=
# Real CIFAR-10/MNIST for tests, the smoke sweep and the demo (read-only, used in place).
RESDEPTH_TEST_DATA ?= $(abspath ../shared/data)
export RESDEPTH_TEST_DATA
INSTALLED := $(VENV)/.installed
# The demo reads the tests' copy of CIFAR-10 where there is one, and downloads it where there is not.
LOCAL_DATA := $(if $(wildcard $(RESDEPTH_TEST_DATA)/cifar-10-python.tar.gz),--data-dir "$(RESDEPTH_TEST_DATA)" --offline)
RESDEPTH := $(VENV)/bin/resdepth

.PHONY: install test test-fast lint pytest smoke demo course paper clean docs

$(INSTALLED): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,ray,tensorboard]"
	touch $@

install: $(INSTALLED)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check resdepth tests
	$(VENV)/bin/ruff format --check resdepth tests
	$(VENV)/bin/mypy resdepth

pytest: $(INSTALLED)
	$(VENV)/bin/pytest -q

test: lint pytest smoke

# The edit loop: everything but the tests marked slow (real sweeps killed and resumed, Ray clusters).
test-fast: $(INSTALLED)
	$(VENV)/bin/pytest -q -m "not slow"

# Rewrite the generated pages (docs/options.md, docs/results-folder.md, docs/cli.md); a test fails when they are stale.
docs: $(INSTALLED)
	$(PY) -m resdepth.docgen

# Plain and ResNet at two depths, 2 epochs on 512 real CIFAR-10 images (synthetic data without them),
# two runs at a time, so the worker processes load the real data themselves.
smoke: $(INSTALLED)
	rm -rf results/smoke
	if [ -f "$(RESDEPTH_TEST_DATA)/cifar-10-python.tar.gz" ]; then \
	  $(RESDEPTH) sweep --depth 8,20 --epochs 2 --train-subset 512 --out results/smoke \
	    --data-dir "$(RESDEPTH_TEST_DATA)" --offline --jobs 2; \
	else \
	  $(RESDEPTH) sweep --depth 8,20 --epochs 2 --dataset synthetic --out results/smoke --jobs 2; \
	fi
	$(RESDEPTH) report results/smoke
	$(RESDEPTH) plot results/smoke

demo: $(INSTALLED)
	$(RESDEPTH) sweep --config experiments/quick.toml $(LOCAL_DATA)
	$(RESDEPTH) report results/quick
	$(RESDEPTH) plot results/quick

# The course's curve: plain and ResNet at 8, 14, 20 and 26 layers, seeds 0-2
# (about 14 min a seed with bf16, estimated; 58 in fp32 on 2 AVX2 cores, measured).
course: $(INSTALLED)
	$(RESDEPTH) sweep --config experiments/course.toml $(LOCAL_DATA)
	$(RESDEPTH) report results/course
	$(RESDEPTH) plot results/course

paper: $(INSTALLED)
	$(RESDEPTH) sweep --config experiments/paper.toml $(LOCAL_DATA)
	$(RESDEPTH) report results/paper
	$(RESDEPTH) plot results/paper --paper --metric test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache results/smoke
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
