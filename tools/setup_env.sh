#!/usr/bin/env bash
# Set up .venv with the full OpenMMLab stack this project runs on:
# torch 2.14.1 + torchvision 0.29.1, mmcv 2.1.0 built from source with its
# ops, mmengine, mmpretrain, mmdet, mmsegmentation and edgeformer_mm (editable).
#
# The mmcv build takes 15-30 minutes on 2 cores. Its wheel is cached in
# $EDGEFORMER_MM_CACHE (default ~/.cache/edgeformer_mm), keyed by the mmcv,
# torch and Python versions, so later set-ups reuse it.
#
# The environment is only marked complete (.venv/.setup-complete) after every
# step, including an import check, succeeded; `make` re-runs this script
# whenever that marker is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=.venv
PY=${PYTHON:-python3.11}
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
OPENVINO_VERSION=2026.4.1
EXECUTORCH_VERSION=1.5.1
CACHE=${EDGEFORMER_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeformer_mm}
START=$(date +%s)

elapsed() { local s=$(( $(date +%s) - ${1:-$START} )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
step() { STEP=$1; echo "==> [$(elapsed)] $STEP"; }
on_error() {
    echo "!! set-up failed in step: $STEP (after $(elapsed))" >&2
    echo "!! fix the cause above, then run 'make setup' again: finished steps are skipped." >&2
}
trap on_error ERR

rm -f "$VENV/.setup-complete"

step "create virtual environment $VENV"
command -v "$PY" >/dev/null || { echo "$PY not found: install Python 3.11 or set PYTHON=" >&2; false; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"

# setuptools<81: mmcv's setup.py and mmengine import pkg_resources (removed
# in 82; 81 warns on every import).
step "install torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION and build tools"
$PIP install -q --no-compile 'setuptools<81' wheel ninja \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

PYTAG=$($VENV/bin/python -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYTAG"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    step "build mmcv $MMCV_VERSION with ops from source (15-30 min; cached afterwards in $WHEEL_DIR)"
    BUILD=$(mktemp -d)
    $PIP download -q --no-deps --no-binary=:all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    grep -q -- '-std=c++20' "$SRC/setup.py"
    LOG="$BUILD/build.log"
    # --no-build-isolation: the build must see the installed torch, or the ops are silently skipped.
    ( cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "$OLDPWD/$VENV/bin/python" -m pip wheel -v --no-deps --no-build-isolation . -w "$BUILD/dist" ) \
        >"$LOG" 2>&1 &
    BUILD_PID=$!
    BUILD_START=$(date +%s)
    while kill -0 "$BUILD_PID" 2>/dev/null; do
        sleep 30
        # ninja prints "[done/total]" per compiled file.
        progress=$(grep -o '^ *\[[0-9]*/[0-9]*\]' "$LOG" | tail -n 1 | tr -d ' []' || true)
        echo "    mmcv build: $(elapsed "$BUILD_START") elapsed, ${progress:-0/?} C++ files compiled"
    done
    if ! wait "$BUILD_PID"; then
        tail -n 40 "$LOG" >&2
        echo "!! mmcv build failed; full log: $LOG" >&2
        false
    fi
    mkdir -p "$WHEEL_DIR"
    # Copy then rename, so an interrupted copy never looks like a cached wheel.
    for whl in "$BUILD"/dist/mmcv-*.whl; do
        cp "$whl" "$WHEEL_DIR/.partial" && mv "$WHEEL_DIR/.partial" "$WHEEL_DIR/$(basename "$whl")"
    done
    rm -rf "$BUILD"
    echo "    mmcv built in $(elapsed "$BUILD_START")"
fi

step "install mmcv (cached wheel), the OpenMMLab stack, the deployment and test tools"
$PIP install -q "$WHEEL_DIR"/mmcv-*.whl -r requirements/openmmlab.txt \
    -r requirements/deploy.txt -r requirements/tests.txt

step "install OpenVINO $OPENVINO_VERSION without its dependencies"
# Not its openvino-telemetry: with it, `import openvino` sends a usage event
# (edgeformer_mm.deployment.openvino blocks it too). numpy is here already.
$PIP install -q --no-deps "openvino==$OPENVINO_VERSION"

step "install ExecuTorch $EXECUTORCH_VERSION with only what its XNNPACK export needs"
# Its declared dependencies add ~30 packages (coremltools, pandas, ...) that
# neither the export nor the runtime imports; torchao is its quantizer's.
$PIP install -q --no-deps "executorch==$EXECUTORCH_VERSION" ruamel.yaml==0.19.1 \
    tabulate==0.10.0 torchao==0.18.0

step "install edgeformer_mm and edgeformer_runtime (runtime/) in editable mode"
# The runtime without its dependencies: numpy and OpenCV are here already
# (mmcv's opencv-python; its opencv-python-headless would overwrite the same
# cv2 package).
$PIP install -q --no-build-isolation -e .
$PIP install -q --no-build-isolation --no-deps -e runtime

step "check the environment"
$VENV/bin/python - <<'PY'
import mmcv, mmcv.ops, torch  # mmcv.ops needs the compiled extension
from mmcv.ops import batched_nms  # noqa: F401
import mmdet.models, mmpretrain.models, mmseg.models  # noqa: F401
import mmdeploy.apis, ncnn, onnxruntime, skimage  # noqa: F401
import os, sys, pnnx
assert os.access(pnnx.EXEC_PATH, os.X_OK), 'the pnnx converter cannot run'
import edgeformer_mm, edgeformer_runtime  # noqa: F401
import shutil
assert shutil.which('edgeformer-run', path=os.path.dirname(sys.executable)), \
    'the edgeformer-run command is missing'
print(f'    torch {torch.__version__}, mmcv {mmcv.__version__} (ops ok), '
      f'edgeformer_mm {edgeformer_mm.__version__}')
PY

touch "$VENV/.setup-complete"
step "done: $VENV is ready"
