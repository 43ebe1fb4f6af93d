# The two set-up commands of the README:  `make demo`  (main job)  and  `make test`.
# Both create .venv on first use: torch + torchvision come from the registry as a matched pair
# (torchvision pins its torch), never the local torch==*+cpu wheel (no torchvision matches it).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# One pytest-xdist worker per usable core (the CPU affinity; nproc would follow OMP_NUM_THREADS), a test file per worker at a time so
# module fixtures are built once; tests/conftest.py pins each worker to its own core.
CORES := $(shell $(PY) -c "import os; print(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count())")
XDIST := -n $(CORES) --dist loadfile

test: $(STAMP) lint emulator
	$(BIN)/python -m pytest -q $(XDIST) --durations=25

# The change-test loop: everything but the tests marked slow (training, benches, subprocess CLIs); under 3 min here.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow"

# Issue 33: on an x86 host with VNNI the tests run the device side on an emulated CPU without it (QEMU's user-mode
# emulator, Debian's qemu-user); installed here where this user may, else those tests skip and say why.
emulator:
	@if [ "$$(uname -m)" != x86_64 ] || command -v qemu-x86_64 >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q qemu-user >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q qemu-user >/dev/null 2>&1; } || \
	  echo "note: could not install qemu-user; the tests that emulate a CPU without VNNI will skip"; \
	else echo "note: qemu-user is not installed (sudo apt-get install qemu-user); the tests that emulate a CPU without VNNI will skip"; fi

# pyflakes, import order, line length (pyproject.toml [tool.ruff])
lint: $(STAMP)
	$(BIN)/ruff check .

# The main job: the whole pipeline on the built-in digits data from one config (teacher -> distill
# -> quantize -> export -> bench, configs/demo.yaml); stages whose inputs are unchanged are skipped on a rerun.
demo: $(STAMP)
	$(BIN)/vitc pipeline configs/demo.yaml

# The full digits study: 40 student epochs, fp32/fp16 exports with and without in-graph pre-processing, by-hand
# baselines and cross-checks: a 22-row bench (results/digits-cpu-intel; ~35 min on 2 cores)
demo-full: $(STAMP)
	$(BIN)/vitc pipeline configs/digits.yaml

# Fashion-MNIST (issue 24): the dataset from Debian's package where this user may install it, else how to get it.
fashion-data:
	@if [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ -n "$$VITC_DATA_ROOT" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; \
	else echo "Fashion-MNIST is not installed: run 'sudo apt-get install dataset-fashion-mnist', or put the four .gz files in a folder and set VITC_DATA_ROOT=DIR"; exit 2; fi

# The whole pipeline on Fashion-MNIST (configs/fashion.yaml; ~2 h on 2 cores, results/fashion-cpu/converged).
demo-fashion: $(STAMP) fashion-data
	$(BIN)/vitc pipeline configs/fashion.yaml

.PHONY: install test test-fast lint emulator demo demo-full fashion-data demo-fashion
