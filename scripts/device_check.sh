#!/usr/bin/env bash
# pymotor on a GPU machine (issue 20), in one run: build the C++ extension against the torch
# found there, run the tests marked `cuda`, run the short CUDA MD benchmark, and write
# everything to $OUT (at most 7 files, no folders). See docs/gpu.md.
#
#   scripts/device_check.sh wheels   # on a CPU machine with pip and a package index: put the
#                                    # wheels the GPU machine lacks into .whl/ (git-ignored
#                                    # through .git/info/exclude; ~4.3 MB; never commit them)
#   scripts/device_check.sh          # on the GPU machine (device tool: carry [".whl"],
#                                    # timeout_s=540); results in $OUT/
#
# Steps and time limits on the GPU machine (each capped by what is left of the overall budget
# PYMOTOR_DEVICE_BUDGET_S, default 480 s, so the run ends inside a 540 s call):
#   1. env      30 s  nvidia-smi, python/torch/CUDA versions, cmake/ninja/nvcc, cores
#   2. wheels   60 s  pip install --no-index --no-deps --target /tmp/site .whl/*.whl;
#                     PYTHONPATH=/tmp/site:<repo>
#   3. build   240 s  cmake -G Ninja with the project's CMakeLists.txt (find_package(Torch) of
#                     the torch found there) -> pymotor/_core*.so; if that fails, a fallback
#                     CMake project that links torch's libraries directly (no CUDA toolkit
#                     detection); then `import pymotor` (its torch version check must pass)
#   4. tests   150 s  pytest -m cuda on every tests/ file with a `mark.cuda` test
#                     (tests/test_cuda.py, tests/test_potentials.py)
#   5. bench   200 s  pytest bench/test_bench_cuda.py (1, 32, 256, 1024 CPNX replicas)
# Files in $OUT: device_check.log (everything), build.log, steps.json, cuda_report.json,
# junit_cuda.xml, bench_cuda.json, bench_cuda.md.
#
# Knobs: PYMOTOR_DEVICE_BUDGET_S, PYMOTOR_DEVICE_STEPS (e.g. "env build tests"),
# PYMOTOR_BENCH_CUDA_SIZES / _STEPS (bench sizes), PYMOTOR_DEVICE_DRY=1 (no wheels, no build:
# use the pymotor already importable; to check this script on a CPU machine),
# PYMOTOR_BUILD_FALLBACK=1 (go straight to the fallback build), PYMOTOR_CONFIGURE_ONLY=1.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
SELF="$ROOT/scripts/device_check.sh"
PY="${PYTHON:-python3}"
WHEEL_DIR="${PYMOTOR_WHEEL_DIR:-.whl}"
OUT="${OUT:-/tmp/pymotor_device_out}"
BUILD_DIR="${PYMOTOR_BUILD_DIR:-build/device}"

# Wheels the GPU image lacks (its package list: /work/.library/device/KINDS.md). `import
# pymotor` needs ase; the benchmark's model and the schnetpack.md competitor need schnetpack
# and what `import schnetpack, schnetpack.md` imports that the image does not have.
BINARY_WHEELS=(ase==3.29.0 schnetpack==2.2.0 omegaconf==2.3.1 matscipy==1.3.1 vesin==0.6.2
               torch-ema==0.3 dirsync==2.2.6 fasteners==0.20)
# sdist-only on PyPI, pure Python: built into py3-none-any wheels on the CPU machine
SDIST_WHEELS=(antlr4-python3-runtime==4.9.3 progressbar==2.5)

# ---------------------------------------------------------------------------------------
# CPU machine: fetch the wheels
# ---------------------------------------------------------------------------------------
fetch_wheels() {
  local exclude
  if exclude="$(git rev-parse --git-path info/exclude 2>/dev/null)"; then
    mkdir -p "$(dirname "$exclude")"
    grep -qxF "/$WHEEL_DIR/" "$exclude" 2>/dev/null || echo "/$WHEEL_DIR/" >>"$exclude"
  fi
  rm -rf "$WHEEL_DIR" && mkdir -p "$WHEEL_DIR" || return 1
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$WHEEL_DIR" "${BINARY_WHEELS[@]}" || return 1
  "$PY" -m pip wheel --no-deps -w "$WHEEL_DIR" "${SDIST_WHEELS[@]}" || return 1
  local bad
  bad="$(ls "$WHEEL_DIR" | grep -vE '(py3-none-any|cp312-cp312-manylinux[0-9_a-z.]*x86_64|py3-none-manylinux[0-9_a-z.]*x86_64)\.whl$' || true)"
  if [ -n "$bad" ]; then echo "not usable on the GPU machine (Python 3.12, x86-64): $bad"; return 1; fi
  ls -l "$WHEEL_DIR" && du -sh "$WHEEL_DIR"
  echo "carry [\"$WHEEL_DIR\"] in the device run; delete $WHEEL_DIR afterwards (never commit it)"
}

# ---------------------------------------------------------------------------------------
# GPU machine: the steps (each runs as `device_check.sh __<step>` under timeout)
# ---------------------------------------------------------------------------------------
step_env() {
  echo "date: $(date -u +%FT%TZ)  host: $(hostname)  cores: $(getconf _NPROCESSORS_ONLN)  $(uname -srm)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm --format=csv
  "$PY" - <<'EOF'
import sys, torch
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"{p.total_memory / 2**30:.0f} GiB", p.multi_processor_count, "SMs",
          "capability", torch.cuda.get_device_capability(0))
    print("matmul.allow_tf32", torch.backends.cuda.matmul.allow_tf32)
EOF
  for t in cmake ninja nvcc gcc g++; do printf '%-6s %s\n' "$t" "$( (command -v "$t" && "$t" --version 2>&1 | head -1) | tr '\n' ' ')"; done
  "$PY" -m pip list 2>/dev/null | grep -iE '^(numpy|scipy|h5py|matplotlib|pybind11|scikit-build-core|pytest|pytest-benchmark|pytorch-lightning|torchmetrics|tqdm|pyyaml) ' || true
  "$PY" -c "import pybind11; print('pybind11 cmakedir', pybind11.get_cmake_dir())"
  ls -l "$WHEEL_DIR" 2>/dev/null || echo "no $WHEEL_DIR/ carried"
}

step_wheels() {
  if ! ls "$WHEEL_DIR"/*.whl >/dev/null 2>&1; then
    echo "no wheels in $WHEEL_DIR/ (run 'scripts/device_check.sh wheels' on the CPU machine, carry $WHEEL_DIR)"
  else
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$WHEEL_DIR"/*.whl || return 1
  fi
  PYTHONPATH="/tmp/site:$ROOT" "$PY" - <<'EOF'
import importlib
for name in ("ase", "h5py", "scipy", "schnetpack", "schnetpack.md", "vesin", "matscipy"):
    try:
        m = importlib.import_module(name)
        print(f"import {name}: ok {getattr(m, '__version__', '')}")
    except Exception as exc:  # report, do not stop: only ase is required
        print(f"import {name}: FAILED {type(exc).__name__}: {exc}")
import ase  # noqa: F401  (pymotor cannot be imported without it)
EOF
}

write_fallback_cmake() {  # $1: folder
  mkdir -p "$1"
  cat >"$1/CMakeLists.txt" <<'EOF'
# Fallback build of pymotor._core (scripts/device_check.sh): torch's libraries are linked by
# name from torch/lib, so no CUDA toolkit detection (Caffe2's cuda.cmake) is needed. The
# extension calls CUDA only through libtorch's dispatcher, so it needs no CUDA libraries itself.
cmake_minimum_required(VERSION 3.20)
project(pymotor_fallback LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
find_package(Python REQUIRED COMPONENTS Interpreter Development.Module)
find_package(pybind11 CONFIG REQUIRED)
find_package(OpenMP COMPONENTS CXX)
file(GLOB PM_SOURCES ${PM_ROOT}/csrc/src/*.cpp ${PM_ROOT}/csrc/bindings/*.cpp)
pybind11_add_module(_core MODULE ${PM_SOURCES})
target_include_directories(_core PRIVATE ${PM_ROOT}/csrc/include ${PM_TORCH_INCLUDES})
target_link_directories(_core PRIVATE ${PM_TORCH_LIBDIR})
target_link_libraries(_core PRIVATE torch torch_cpu c10)
target_compile_definitions(_core PRIVATE PYMOTOR_TORCH_VERSION="${PM_TORCH_VERSION}"
                           _GLIBCXX_USE_CXX11_ABI=${PM_CXX11_ABI})
target_compile_options(_core PRIVATE -O3)
if(OpenMP_CXX_FOUND)
  target_link_libraries(_core PRIVATE OpenMP::OpenMP_CXX)
endif()
set_target_properties(_core PROPERTIES BUILD_RPATH "${PM_TORCH_LIBDIR}")
EOF
}

step_build() {
  local log="$OUT/build.log" gen=Ninja pyexe pybind_dir
  command -v ninja >/dev/null || gen="Unix Makefiles"
  pyexe="$(command -v "$PY")"
  pybind_dir="$("$PY" -c 'import pybind11; print(pybind11.get_cmake_dir())')"
  if [ "${PYMOTOR_CONFIGURE_ONLY:-0}" != 1 ] && [ "${PYMOTOR_DEVICE_FORCE_BUILD:-0}" != 1 ] &&
     ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    # a pymotor/_core*.so left in a CPU checkout would shadow that machine's own build
    echo "no CUDA device: not building into pymotor/ (PYMOTOR_DEVICE_FORCE_BUILD=1 to insist)"; return 1
  fi
  [ "${PYMOTOR_CONFIGURE_ONLY:-0}" = 1 ] || rm -f pymotor/_core*.so  # nothing built elsewhere may be imported
  : >"$log"
  local ok=1
  if [ "${PYMOTOR_BUILD_FALLBACK:-0}" != 1 ]; then
    echo "-- project build: cmake -S . -B $BUILD_DIR (find_package(Torch) of $pyexe)" | tee -a "$log"
    # TORCH_CUDA_ARCH_LIST: Caffe2's cmake need not probe the GPU (H200 = sm_90)
    if TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" cmake -S . -B "$BUILD_DIR" -G "$gen" \
         -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$pyexe" -Dpybind11_DIR="$pybind_dir" >>"$log" 2>&1; then
      if [ "${PYMOTOR_CONFIGURE_ONLY:-0}" = 1 ]; then echo "configured (PYMOTOR_CONFIGURE_ONLY)"; return 0; fi
      cmake --build "$BUILD_DIR" -j "$(getconf _NPROCESSORS_ONLN)" >>"$log" 2>&1 && cp "$BUILD_DIR"/_core*.so pymotor/ && ok=0
    fi
    [ $ok = 0 ] || { echo "-- project build FAILED; last lines of build.log:"; tail -25 "$log"; }
  fi
  if [ $ok != 0 ]; then
    local fb="$BUILD_DIR-fallback" vars
    write_fallback_cmake "$fb"
    vars="$("$PY" - <<'EOF'
import torch
from torch.utils.cpp_extension import include_paths, library_paths
print(";".join(include_paths()))
print(library_paths()[0])
print(torch.__version__.split("+")[0])
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
EOF
)" || return 1
    local inc libdir ver abi
    { read -r inc; read -r libdir; read -r ver; read -r abi; } <<<"$vars"
    echo "-- fallback build: $fb (torch $ver, lib $libdir, cxx11 abi $abi)" | tee -a "$log"
    cmake -S "$fb" -B "$fb/build" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$pyexe" \
      -Dpybind11_DIR="$pybind_dir" -DPM_ROOT="$ROOT" -DPM_TORCH_INCLUDES="$inc" -DPM_TORCH_LIBDIR="$libdir" \
      -DPM_TORCH_VERSION="$ver" -DPM_CXX11_ABI="$abi" >>"$log" 2>&1 || { tail -25 "$log"; return 1; }
    if [ "${PYMOTOR_CONFIGURE_ONLY:-0}" = 1 ]; then echo "configured fallback (PYMOTOR_CONFIGURE_ONLY)"; return 0; fi
    cmake --build "$fb/build" -j "$(getconf _NPROCESSORS_ONLN)" >>"$log" 2>&1 || { tail -25 "$log"; return 1; }
    cp "$fb/build"/_core*.so pymotor/ || return 1
  fi
  ls -l pymotor/_core*.so
  # pymotor/__init__.py refuses an extension built against another torch major.minor than the
  # one running; built here against this torch, the check passes (nothing is relaxed).
  "$PY" -c "import torch, pymotor; print('import pymotor ok: built against torch', pymotor._core.TORCH_VERSION, '| running', torch.__version__, '| cuda', torch.cuda.is_available())"
}

step_tests() {
  local files
  files="$(grep -l 'mark\.cuda' tests/test_*.py | tr '\n' ' ')"
  echo "files with cuda tests: $files"
  # -m cuda overrides the project's -m 'not slow'; DeprecationWarnings of another torch version
  # must not turn into errors here (pyproject's filterwarnings = error)
  # shellcheck disable=SC2086
  PYMOTOR_CUDA_REPORT="$OUT/cuda_report.json" "$PY" -m pytest $files -m cuda -v -rA -p no:cacheprovider \
    -W ignore::DeprecationWarning --junitxml="$OUT/junit_cuda.xml"
}

step_bench() {
  PYMOTOR_BENCH_OUT="$OUT/bench_cuda.json" PYMOTOR_BENCH_TIMER=wall "$PY" -m pytest bench/test_bench_cuda.py \
    -v -s -rA -p no:cacheprovider -W ignore::DeprecationWarning
}

# ---------------------------------------------------------------------------------------
# GPU machine: the driver
# ---------------------------------------------------------------------------------------
STEP_NAMES=()
STEP_RC=()
STEP_S=()
STEP_LIMIT=()

write_steps_json() {
  local i sep=""
  {
    echo "{\"budget_s\": $BUDGET, \"elapsed_s\": $((SECONDS - T0)), \"steps\": ["
    for i in "${!STEP_NAMES[@]}"; do
      echo "$sep {\"step\": \"${STEP_NAMES[$i]}\", \"rc\": \"${STEP_RC[$i]}\", \"seconds\": ${STEP_S[$i]}, \"limit_s\": ${STEP_LIMIT[$i]}}"
      sep=","
    done
    echo "]}"
  } >"$OUT/steps.json"
}

run_step() {  # run_step NAME LIMIT_S
  local name=$1 limit=$2 left t rc
  left=$((BUDGET - (SECONDS - T0)))
  if [ "$left" -lt 20 ]; then
    echo "== $name: SKIPPED, time budget spent ($((SECONDS - T0)) s of $BUDGET s)"
    STEP_NAMES+=("$name"); STEP_RC+=("skipped-budget"); STEP_S+=(0); STEP_LIMIT+=(0); write_steps_json
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo
  echo "== $name (limit $limit s; $((SECONDS - T0)) s of $BUDGET s used)"
  t=$SECONDS
  timeout -k 10 "$limit" bash "$SELF" "__$name"
  rc=$?
  [ $rc = 124 ] && echo "== $name: TIMED OUT after $limit s"
  echo "== $name: rc=$rc in $((SECONDS - t)) s"
  STEP_NAMES+=("$name"); STEP_RC+=("$rc"); STEP_S+=($((SECONDS - t))); STEP_LIMIT+=("$limit"); write_steps_json
  return $rc
}

wanted() { [[ " ${PYMOTOR_DEVICE_STEPS:-env wheels build tests bench} " == *" $1 "* ]]; }

device_run() {
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/device_check.log") 2>&1
  T0=$SECONDS
  BUDGET="${PYMOTOR_DEVICE_BUDGET_S:-480}"
  export OUT PY WHEEL_DIR BUILD_DIR
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
  echo "pymotor device check: $ROOT -> $OUT (budget $BUDGET s)"
  local built=1
  wanted env && run_step env 30
  if [ "${PYMOTOR_DEVICE_DRY:-0}" = 1 ]; then
    echo "PYMOTOR_DEVICE_DRY=1: no wheels, no build; using the pymotor already importable"
    built=0
  else
    if wanted wheels; then
      run_step wheels 60 || echo "wheels: not installed; tests that need ase/schnetpack will fail or skip"
      export PYTHONPATH="/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if wanted build; then run_step build 240 && built=0; fi
  fi
  if [ $built = 0 ]; then
    wanted tests && run_step tests 150
    wanted bench && run_step bench 200
  else
    echo "== no extension built: tests and bench not run"
  fi
  echo
  echo "== summary ($((SECONDS - T0)) s)"
  cat "$OUT/steps.json" 2>/dev/null
  [ -f "$OUT/bench_cuda.md" ] && cat "$OUT/bench_cuda.md"
  ls -l "$OUT"
}

case "${1:-run}" in
  wheels) fetch_wheels ;;
  run) device_run ;;
  __env) step_env ;;
  __wheels) step_wheels ;;
  __build) step_build ;;
  __tests) step_tests ;;
  __bench) step_bench ;;
  *) echo "usage: $0 [wheels|run]"; exit 2 ;;
esac
