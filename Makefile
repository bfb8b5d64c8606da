# pymotor: `make demo` and `make test` each set up .venv (if missing), install every
# dependency, build the C++ extension and then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.pymotor-installed
SOURCES := $(shell git ls-files csrc CMakeLists.txt pyproject.toml 2>/dev/null)
export OMP_NUM_THREADS ?= 1

.PHONY: all install demo test test-all bench xtb-binary chromium clean
all: install

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps-installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt "torch==2.13.0" "scikit-build-core>=0.10" "pybind11>=2.12" "numpy>=2" ninja
	$(PIP) install -c constraints.txt "numpy>=2" "scipy>=1.11" "ase>=3.23" "h5py>=3.9" "tqdm>=4.60" \
	    "matplotlib>=3.7" "rdkit>=2023.9" "tblite>=0.4" "xtb>=22.1" \
	    "dask[distributed]==2026.8.0" "dask-jobqueue==0.9.0" \
	    "sympy>=1.13" pyyaml "hydra-core>=1.1" "pytorch_lightning>=2" torchmetrics hydra-colorlog rich \
	    fasteners dirsync torch-ema "matscipy>=1.1" tensorboard tensorboardX protobuf progressbar vesin \
	    "pytest>=8" "pytest-benchmark>=5" "MDAnalysis>=2.7" "mdtraj>=1.10" "tidynamics>=1.1" "transport-analysis>=0.1.2"
	$(PIP) install --no-deps --ignore-requires-python "schnetpack==2.2.0"
	touch $@

$(STAMP): $(VENV)/.deps-installed $(SOURCES)
	flock /tmp/pymotor-build.lock $(PIP) install -c constraints.txt --no-build-isolation --no-deps -e .
	touch $@

install: $(STAMP)

demo: install
	$(VENV)/bin/pymotor demo $(DEMO_ARGS)

test: install chromium
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install chromium
	$(PY) -m pytest -m "slow or not slow or cuda" $(PYTEST_ARGS)

# The xTB benchmark's competitor is the source work's file-based route through the `xtb`
# executable (Debian package `xtb`); installed here when missing and apt is usable as root,
# otherwise that route is skipped with a message.
xtb-binary:
	@command -v xtb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	    && (apt-get install -y -q xtb >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q xtb >/dev/null)); } \
	    || echo "note: no xtb executable (apt-get install xtb); the file-based xTB route will be skipped"

# The report's browser test (tests/test_report_browser.py) loads index.html in a headless
# Chromium (Debian package `chromium`); installed here when missing and apt is usable as root,
# otherwise that test is skipped with a message.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	    && (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
	        || (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null)); } \
	    || echo "note: no chromium (apt-get install chromium); the report's browser test will be skipped"

bench: install xtb-binary
	$(PY) -m pytest bench --benchmark-only --benchmark-autosave --benchmark-storage=.benchmarks \
	    $$(ls .benchmarks/*/*.json >/dev/null 2>&1 && echo --benchmark-compare --benchmark-compare-fail=median:50%) $(BENCH_ARGS)

clean:
	rm -rf build $(VENV) *.egg-info
