#!/usr/bin/env bash
# Create (or verify) the project's virtual environment. Idempotent: when the environment is complete for the
# current pins it only checks and returns. Used by both README commands (`make demo`, `make test`).
#
#   FEATQUANT_VENV       where the environment lives            (default: <repo>/.venv)
#   FEATQUANT_CACHE      where compiled mmcv wheels are kept    (default: ${XDG_CACHE_HOME:-~/.cache}/featquant-mmdet)
#   FEATQUANT_MMCV_CUDA  1: build mmcv with CUDA ops, 0: CPU ops only, unset: CUDA when nvcc and a GPU are visible
#   PYTHON               interpreter used to create the environment (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FEATQUANT_VENV:-$ROOT/.venv}"
CACHE="${FEATQUANT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/featquant-mmdet}"
PYTHON="${PYTHON:-python3}"
REQ="$ROOT/requirements"
CONSTRAINTS="$REQ/constraints.txt"
MARKER="$VENV/.featquant-ready"

step=""
fail() {
  echo "" >&2
  echo "setup_env: FAILED at step: $step" >&2
  echo "setup_env: $1" >&2
  echo "setup_env: the environment at $VENV is NOT ready; fix the cause and rerun the same command" >&2
  echo "setup_env: (it resumes; 'rm -rf $VENV' starts over, 'rm -rf $CACHE' also drops cached mmcv wheels)" >&2
  exit 1
}
trap 'fail "command failed (exit $?): $BASH_COMMAND"' ERR
log() { echo "[setup_env $(date +%H:%M:%S)] $*"; }

# The marker holds a digest of every input of the environment; any change to them reinstalls what changed.
digest() { cat "$REQ"/*.txt "$ROOT/setup.cfg" "$ROOT/tools/setup_env.sh" | sha256sum | cut -d' ' -f1; }
want="$(digest)"
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ] && "$VENV/bin/python" -c "import featquant_mmdet, mmcv.ops" 2>/dev/null; then
  log "environment ready: $VENV"
  exit 0
fi
rm -f "$MARKER"

step="check toolchain"
command -v "$PYTHON" >/dev/null || fail "no '$PYTHON' interpreter found (set PYTHON=/path/to/python3.11)"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] >= (3, 9)' || fail "$PYTHON is older than 3.9"

step="create virtual environment"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
export PATH="$VENV/bin:$PATH"   # ninja from the venv makes the mmcv build parallel

step="install torch and build tools (pip, index reachable?)"
log "$step"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r "$REQ/build.txt" \
  || fail "pip could not install torch/build tools; check network access to the package index and rerun"

step="select mmcv build (CPU or CUDA)"
cuda=0
if [ "${FEATQUANT_MMCV_CUDA:-}" = "1" ]; then
  cuda=1
elif [ -z "${FEATQUANT_MMCV_CUDA:-}" ] && command -v nvcc >/dev/null \
     && "$VENV/bin/python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  cuda=1
fi
key="$("$VENV/bin/python" - "$cuda" <<'PY'
import sys, sysconfig, torch
flavour = f"cu{torch.version.cuda.replace('.', '')}" if sys.argv[1] == "1" and torch.version.cuda else "cpu"
print(f"mmcv-2.1.0_torch-{torch.__version__.split('+')[0]}_{flavour}_py{sys.version_info[0]}{sys.version_info[1]}"
      f"_{sysconfig.get_platform().replace('-', '_')}")
PY
)"
WHEELDIR="$CACHE/wheels/$key"

if ! ls "$WHEELDIR"/mmcv-*.whl >/dev/null 2>&1; then
  step="check C++ compiler for the mmcv build"
  command -v "${CXX:-g++}" >/dev/null || fail "no C++ compiler (${CXX:-g++}); install one (e.g. apt-get install g++) and rerun"
  step="download mmcv 2.1.0 source"
  src="$(mktemp -d)"
  log "$step into $src"
  "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==2.1.0" -d "$src" \
    || fail "could not download the mmcv source distribution; check network access to the package index"
  tar xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
  # torch>=2.13 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17
  sed -i 's/c++17/c++20/g' "$src/mmcv-2.1.0/setup.py"
  step="compile mmcv 2.1.0 ($([ $cuda = 1 ] && echo CUDA || echo CPU) ops; 12-20 min on 2 cores)"
  log "$step"
  tmpwheel="$src/wheel"
  if [ $cuda = 1 ]; then export FORCE_CUDA=1; else export FORCE_CUDA=0; export CUDA_VISIBLE_DEVICES=""; fi
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" wheel -q --no-build-isolation --no-deps \
      "$src/mmcv-2.1.0" -w "$tmpwheel" > "$src/build.log" 2>&1 \
    || { tail -n 30 "$src/build.log" >&2; fail "mmcv compilation failed (full log: $src/build.log)"; }
  unset FORCE_CUDA
  step="shrink and cache the mmcv wheel"
  # the _ext library is mostly debug info (82 MB -> ~3 MB); strip it inside the wheel before caching
  (cd "$tmpwheel" && mkdir x && cd x && "$VENV/bin/python" -m zipfile -e ../mmcv-*.whl . \
     && find . -name '_ext*.so' -exec strip --strip-debug {} + \
     && "$VENV/bin/python" -m wheel pack . -d .. >/dev/null && cd .. && rm -rf x) || true
  mkdir -p "$WHEELDIR"
  whl="$(ls -t "$tmpwheel"/mmcv-*.whl | head -n1)"
  cp "$whl" "$WHEELDIR/.partial" && mv "$WHEELDIR/.partial" "$WHEELDIR/$(basename "$whl")"
  rm -rf "$src"
  log "cached $(basename "$whl") in $WHEELDIR"
fi

step="install mmcv (cached wheel), mmdet, mmengine and the rest"
log "$step"
"${PIP[@]}" install -q -c "$CONSTRAINTS" "$(ls "$WHEELDIR"/mmcv-*.whl | head -n1)" \
    -r "$REQ/runtime.txt" -r "$REQ/tests.txt" \
  || fail "pip could not install the runtime requirements; check network access to the package index and rerun"
step="install featquant_mmdet (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

step="verify the environment"
"$VENV/bin/python" - <<'PY' || fail "the installed stack does not work together (see the traceback above)"
import torch, mmcv, mmdet, mmengine
from mmcv.ops import nms, RoIAlign
import featquant_mmdet  # noqa: F401  (registers the plugin)
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
out = RoIAlign((2, 2), 1.0, 0)(torch.ones(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]))
assert out.shape == (1, 1, 2, 2)
print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmengine {mmengine.__version__}")
PY
step="build the CPU maps kernel"
# built here once (about 25 s, cached per machine) rather than at the first training step; a failure only warns:
# the eager maps run then (featquant_mmdet/ops/native.py)
"$VENV/bin/python" -c "from featquant_mmdet.ops import native; print('CPU maps kernel:', 'built' if native.available() else 'not built, the eager maps will run')"
want="$(digest)"
echo "$want" > "$MARKER"
log "environment ready: $VENV"
