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
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	bash benchmarks/demo.sh

.PHONY: install test demo
