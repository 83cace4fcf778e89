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

# Re-measure the shipped CPU profiles on this machine (needs a quiet machine, ~13 min on 2 cores). The old
# journals go first: a journal left in place would be resumed, not re-measured.
PROFILE_RES_W10 := 160,192,224
profiles: $(STAMP)
	for target in ort-cpu tflite; do \
	  for space in ofa-mbv3-w1.0 tiny-mbv3; do \
	    dir=device_profiles/$$target-1t-$$space; res=$$([ $$space = tiny-mbv3 ] || echo --resolutions $(PROFILE_RES_W10)); \
	    rm -f $$dir/journal.jsonl $$dir/validation_journal.jsonl; \
	    $(BIN)/hwnas profile --target $$target --space $$space $$res --threads 1 --validate 120 -o $$dir || exit 1; \
	  done; \
	  dir=device_profiles/$$target-1t-tiny-mbv3-int8; rm -f $$dir/journal.jsonl $$dir/validation_journal.jsonl; \
	  $(BIN)/hwnas profile --target $$target --precision int8 --space tiny-mbv3 --threads 1 --validate 120 -o $$dir || exit 1; \
	done

clean:
	rm -rf build *.egg-info hwnas/_C*.so $(STAMP)
