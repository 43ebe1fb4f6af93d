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

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The main job on the built-in digits data: a resnet18 teacher, deit_tiny hard-distilled from it,
# int8 through each runtime's quantizer, and verified exports. (`vitc pipeline` replaces this list
# once it exists.)
R := runs/demo
demo: $(STAMP)
	$(BIN)/vitc teacher --model resnet18 --epochs 10 --lr 2e-3 --out $(R)/teacher --force
	$(BIN)/vitc distill --teacher-checkpoint $(R)/teacher --student deit_tiny --img-size 32 --patch-size 8 \
		--distillation hard --epochs 40 --lr 5e-4 --out $(R)/student --force
	$(BIN)/vitc quantize $(R)/student --out $(R)/int8 --force
	$(BIN)/vitc quantize $(R)/student --backend onnxruntime --calib digits --out $(R)/exports
	$(BIN)/vitc quantize $(R)/student --backend openvino --calib digits --out $(R)/exports
	$(BIN)/vitc export $(R)/student --target onnx --out $(R)/exports
	$(BIN)/vitc export $(R)/student --target openvino --out $(R)/exports
	$(BIN)/vitc export $(R)/student --target executorch --out $(R)/exports
	$(BIN)/vitc export --list

.PHONY: install test demo
