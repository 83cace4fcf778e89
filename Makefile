# hwnas — `make demo` (the main job, offline) and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hwnas-installed

.PHONY: demo test bench profiles install clean

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

# Re-measure the shipped CPU profiles on this machine (needs a quiet machine, ~45 min on 2 cores).
PROFILE_RES_W10 := 160,192,224
profiles: $(STAMP)
	for target in ort-cpu tflite; do \
	  $(BIN)/hwnas profile --target $$target --space ofa-mbv3-w1.0 --resolutions $(PROFILE_RES_W10) --threads 1 \
	    -o device_profiles/$$target-1t-ofa-mbv3-w1.0 && \
	  $(BIN)/hwnas lut validate device_profiles/$$target-1t-ofa-mbv3-w1.0 --n 200 || exit 1; \
	  $(BIN)/hwnas profile --target $$target --space tiny-mbv3 --threads 1 -o device_profiles/$$target-1t-tiny-mbv3 && \
	  $(BIN)/hwnas lut validate device_profiles/$$target-1t-tiny-mbv3 --n 100 || exit 1; \
	done

clean:
	rm -rf build *.egg-info hwnas/_C*.so $(STAMP)
