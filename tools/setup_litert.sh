#!/usr/bin/env bash
# Opt-in: set up .venv-litert, an environment for the LiteRT (TensorFlow
# Lite's successor) export, edgeformer_mm/deployment/litert.py, and its
# tests. It is never part of the default set-up (tools/setup_env.sh, make):
# litert-torch brings about 0.5 GB of its own (jax, jaxlib, the LiteRT
# converter and interpreter) on top of .venv.
#
# .venv itself is left untouched. .venv-litert sees .venv's packages (torch,
# mmcv, the OpenMMLab stack, edgeformer_mm in editable mode) through a .pth
# file and installs only what litert-torch adds, in its own site-packages,
# which comes first on sys.path. Every package .venv has is pinned to .venv's
# version (a constraints file made from .venv), so the model code runs on the
# same versions in both; the one exception is typing_extensions, which
# litert's xdsl caps below 4.13 (.venv-litert's copy shadows .venv's).
#
# transformers is left out, although litert-torch lists it: only
# litert_torch.generative (LLMs) uses it, and with transformers 5 installed
# mmpretrain imports its multimodal models, which fail on transformers 5.
#
# Usage: bash tools/setup_litert.sh (after tools/setup_env.sh); then
#   .venv-litert/bin/python -m pytest tests/test_deployment/test_litert.py
# The environment is marked complete (.venv-litert/.setup-complete) only
# after an import and conversion check; a complete one is left as it is
# (seconds). Downloads are cached by pip, outside the repository.
set -euo pipefail

cd "$(dirname "$0")/.."
MAIN=.venv
VENV=.venv-litert
LITERT_TORCH_VERSION=0.10.0
# Only litert_torch.generative imports these (see above).
LEFT_OUT='transformers'
START=$(date +%s)

elapsed() { local s=$(( $(date +%s) - ${1:-$START} )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
step() { STEP=$1; echo "==> [$(elapsed)] $STEP"; }
on_error() {
    echo "!! LiteRT set-up failed in step: $STEP (after $(elapsed))" >&2
    echo "!! fix the cause above, then run 'bash tools/setup_litert.sh' again." >&2
}
trap on_error ERR

STEP='check the main environment'
if [ ! -f "$MAIN/.setup-complete" ]; then
    echo "!! $MAIN is not set up: run 'make setup' (tools/setup_env.sh) first" >&2
    exit 1
fi
MAIN_SITE=$(cd "$("$MAIN/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" && pwd)
# Complete: for this litert-torch, made after .venv's last set-up, and still
# pointing at .venv (the repository may have moved).
if [ -f "$VENV/.setup-complete" ] && [ "$VENV/.setup-complete" -nt "$MAIN/.setup-complete" ] \
        && grep -qx "litert-torch==$LITERT_TORCH_VERSION" "$VENV/.setup-complete" \
        && grep -qF "'$MAIN_SITE'" "$VENV"/lib/python3*/site-packages/_edgeformer_main_venv.pth 2>/dev/null; then
    echo "==> $VENV is ready (litert-torch $LITERT_TORCH_VERSION; delete $VENV/.setup-complete to redo the set-up)"
    exit 0
fi
rm -f "$VENV/.setup-complete"

step "create virtual environment $VENV on top of $MAIN"
# The same interpreter as .venv: its compiled packages (torch, mmcv) are used.
[ -x "$VENV/bin/python" ] || "$MAIN/bin/python" -m venv "$VENV"
# Ignored by git whatever the repository's .gitignore says.
echo '*' > "$VENV/.gitignore"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# addsitedir, not a bare path: .venv's own .pth files (the editable installs)
# are processed too. .venv-litert's site-packages stays first on sys.path.
echo "import site; site.addsitedir('$MAIN_SITE')" > "$SITE/_edgeformer_main_venv.pth"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
# The venv's bundled setuptools (65) would shadow .venv's (<81, which
# mmengine needs and torch's setuptools>=77 accepts).
if [ -d "$SITE/setuptools" ] && [ ! -f "$SITE/.setuptools-removed" ]; then
    $PIP uninstall -q -y setuptools
    touch "$SITE/.setuptools-removed"
fi

step "pin the packages of $MAIN"
CONSTRAINTS="$VENV/constraints-main.txt"
"$MAIN/bin/python" - "$CONSTRAINTS" <<'PY'
import sys
from importlib import metadata
skip = {'typing-extensions', 'edgeformer-mm', 'edgeformer-runtime', 'pip'}
pins = set()
for dist in metadata.distributions():
    name = dist.metadata['Name'].lower().replace('_', '-')
    if name not in skip:
        pins.add(f'{name}=={dist.version}')
with open(sys.argv[1], 'w') as f:
    f.write('\n'.join(sorted(pins)) + '\n')
PY

step "install litert-torch $LITERT_TORCH_VERSION and its dependencies (but $LEFT_OUT)"
$PIP install -q --no-compile --no-deps "litert-torch==$LITERT_TORCH_VERSION"
REQUIREMENTS=$("$VENV/bin/python" - "$LEFT_OUT" <<'PY'
import re, sys
from importlib import metadata
left_out = set(sys.argv[1].split())
for requirement in metadata.requires('litert-torch') or []:
    name = re.match(r'[A-Za-z0-9._-]+', requirement).group().lower()
    if name not in left_out and 'extra ==' not in requirement:
        print(requirement.replace(' ', ''))
PY
)
# pip may report typing_extensions "outside environment" and install its own
# copy here: .venv is never changed.
$PIP install -q --no-compile -c "$CONSTRAINTS" $REQUIREMENTS 2>&1 \
    | { grep -v "^WARNING: Location 'file://" || true; }

step "check the environment: edgeformer_mm imports, litert-torch converts, LiteRT runs"
( cd /tmp && LITERT_TORCH_SHOW_PROGRESS=n "$OLDPWD/$VENV/bin/python" - <<'PY' 2>&1 | grep -v '^[IW][0-9]\{4\} \|^WARNING: All log messages' )
import os, tempfile, warnings
warnings.simplefilter('ignore')
import numpy as np
import torch
import edgeformer_mm, mmdet.models, mmpretrain.models, mmseg.models  # noqa: F401
import litert_torch
from ai_edge_litert.interpreter import Interpreter
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
x = torch.rand(1, 3, 16, 16)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'check.tflite')
    litert_torch.convert(model, (x, )).export(path)
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]['index'], x.numpy())
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
error = float(np.abs(y - model(x).detach().numpy()).max())
assert error < 1e-5, error
print(f'    torch {torch.__version__}, edgeformer_mm {edgeformer_mm.__version__}, '
      f'litert-torch {litert_torch.__version__}: converted and ran (max error {error:.1e})')
PY

echo "litert-torch==$LITERT_TORCH_VERSION" > "$VENV/.setup-complete"
step "done: $VENV is ready ($(du -sh "$VENV" | cut -f1) on top of $MAIN); run the LiteRT tests with"
echo "    $VENV/bin/python -m pytest tests/test_deployment/test_litert.py"
