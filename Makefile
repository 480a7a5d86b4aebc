# The README's quick start: `make install`, `make demo` (main job) and `make test` (the whole suite).
# Both create .venv on first use; torch is pinned through constraints.txt so nothing pulls a newer one.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
EXTRAS ?= vision,clip,index,track,dev

.PHONY: demo test install bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# one CPU thread, as the stored runs: CPU numerics depend on the thread count (docs/reporting.md).
# DEMO_FLAGS: extra `bitrieve demo` flags, e.g. make demo DEMO_FLAGS="--epochs 1" (a quick check)
DEMO_FLAGS ?=
demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/bitrieve demo $(DEMO_FLAGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/eval_speed.py
	$(BIN)/python benchmarks/index_search.py

clean-venv:
	rm -rf $(VENV)
