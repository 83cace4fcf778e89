# hwnas — `make demo` (the main job, offline) and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hwnas-installed

.PHONY: demo test bench install clean

install: $(STAMP)

# torch first, pinned, so no later requirement can pull the multi-GB CUDA wheels.
$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.h csrc/*.cpp)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet "setuptools>=69" wheel pybind11==3.1.0
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hwnas demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf build *.egg-info hwnas/_C*.so $(STAMP)
