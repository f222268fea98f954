#!/usr/bin/env bash
# Set up the whole mmvheat stack in the current Python environment:
#   torch + torchvision, mmengine, mmcv 2.1.0 with compiled ops (built from the
#   source distribution when needed), mmdet, mmseg, mmpretrain, then mmvheat
#   itself in editable mode. Every step is skipped when already satisfied, so
#   a second run takes seconds.
#
# Usage: bash tools/install.sh
# Environment:
#   PYTHON            interpreter to install into (default: python3)
#   MAX_JOBS          parallel compile jobs for mmcv (default: number of cores)
#   MMVHEAT_WHEELS    where the built mmcv wheel is kept for re-use
#                     (default: ~/.cache/mmvheat/wheels)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip --disable-pip-version-check)
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
MMCV_VERSION="2.1.0"
WHEELS="${MMVHEAT_WHEELS:-$HOME/.cache/mmvheat/wheels}"
export MAX_JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}"

START=$SECONDS
step_start=$SECONDS
log() { printf '\n[install %4ds] %s\n' "$((SECONDS - START))" "$*"; }
done_step() { printf '[install] ... %s (%ds)\n' "$1" "$((SECONDS - step_start))"; }
die() { printf '\n[install] FAILED: %s\n' "$*" >&2; exit 1; }
trap 'die "command on line $LINENO exited with status $? (see the output above)"' ERR

command -v "$PY" >/dev/null || die "no '$PY' interpreter found; set PYTHON=/path/to/python"
PY="$(command -v "$PY")"

# Succeeds when the python snippet runs without error (quietly). Runs from /
# so that the checkout itself is not importable from the working directory.
py_ok() { (cd / && "$PY" -c "$1") >/dev/null 2>&1; }
log "Python: $("$PY" --version 2>&1) at $(command -v "$PY")"

# 1. Build tooling. mmengine needs pkg_resources at run time (setuptools < 81);
#    torch >= 2.13 wants setuptools >= 77.
step_start=$SECONDS
log "1/6 setuptools (>=77,<81, ships pkg_resources) and wheel"
SETUPTOOLS_FITS="
import setuptools, wheel, pkg_resources
v = tuple(int(p) for p in setuptools.__version__.split('.')[:2])
assert (77, 0) <= v < (81, 0)"
setuptools_version() {
    (cd / && "$PY" -c 'import setuptools; print(setuptools.__version__)') 2>/dev/null || echo none
}
if py_ok "$SETUPTOOLS_FITS"; then
    done_step "already satisfied"
else
    # Also the repair path: `pip install openmim` pulls in openxlab, which
    # pins setuptools~=60.2; re-running this script puts back a fitting one.
    echo "[install] found setuptools $(setuptools_version); need >=77,<81 (torch wants >=77, mmengine needs pkg_resources)"
    "${PIP[@]}" install "setuptools>=77,<81" wheel || die "could not install setuptools/wheel"
    py_ok "$SETUPTOOLS_FITS" || die "setuptools is still outside [77, 81) after installing it"
    done_step "installed setuptools $(setuptools_version)"
fi

# 2. torch + torchvision as a pair that imports together.
step_start=$SECONDS
log "2/6 torch ${TORCH_VERSION} + torchvision ${TORCHVISION_VERSION}"
if py_ok "
import torch, torchvision
torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)"; then
    done_step "already working: torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    echo "[install] installing torch==${TORCH_VERSION} torchvision==${TORCHVISION_VERSION} (several GB)"
    "${PIP[@]}" install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
        || die "could not install torch/torchvision"
    py_ok "
import torch, torchvision
torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)" \
        || die "torch and torchvision were installed but do not import together"
    done_step "installed"
fi

# 3. Pure-python runtime requirements (mmengine, numpy, opencv, ...).
step_start=$SECONDS
log "3/6 runtime requirements (mmengine, opencv, pycocotools, ...)"
if py_ok "
import mmengine, cv2, pycocotools, shapely, scipy, terminaltables, matplotlib
import ftfy, regex, prettytable, pytest, addict, yaml, yapf, packaging
assert mmengine.__version__ == '0.10.7'"; then
    done_step "already satisfied"
else
    "${PIP[@]}" install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
        mmengine==0.10.7 opencv-python pycocotools shapely scipy terminaltables \
        matplotlib ftfy regex prettytable addict pyyaml yapf packaging ninja \
        "torch==$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')" \
        || die "could not install the runtime requirements"
    done_step "installed"
fi

# 4. mmcv with compiled ops.
MMCV_CHECK="
import mmcv, torch
assert mmcv.__version__ == '${MMCV_VERSION}', mmcv.__version__
from mmcv.ops import nms, RoIAlign
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
RoIAlign((2, 2), 1.0, 0)(torch.rand(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]))"
step_start=$SECONDS
log "4/6 mmcv ${MMCV_VERSION} with compiled ops"
if py_ok "$MMCV_CHECK"; then
    done_step "already working"
else
    TORCH_TAG="$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
    WHEEL_DIR="$WHEELS/torch-${TORCH_TAG}"
    mkdir -p "$WHEEL_DIR"
    if ! ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl >/dev/null 2>&1; then
        BUILD_DIR="$(mktemp -d)"
        echo "[install] fetching the mmcv ${MMCV_VERSION} source distribution"
        "${PIP[@]}" download --no-deps --no-binary :all: "mmcv==${MMCV_VERSION}" -d "$BUILD_DIR" \
            || die "could not download the mmcv ${MMCV_VERSION} sdist"
        tar -xzf "$BUILD_DIR"/mmcv-${MMCV_VERSION}.tar.gz -C "$BUILD_DIR"
        SRC="$BUILD_DIR/mmcv-${MMCV_VERSION}"
        # Newer torch headers refuse C++17 ("C++20 or later compatible compiler
        # is required"); mmcv's setup.py hard-codes -std=c++17.
        TORCH_INC="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')"
        if grep -rqs "C++20 or later" "$TORCH_INC/c10/macros" "$TORCH_INC/ATen" 2>/dev/null; then
            echo "[install] torch headers need C++20: patching mmcv's setup.py (-std=c++17 -> -std=c++20)"
            sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
        fi
        echo "[install] building mmcv ${MMCV_VERSION} with ops (MAX_JOBS=${MAX_JOBS}); this takes ~10 min on 2 cores"
        (cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" \
            "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$WHEEL_DIR" . ) \
            || die "the mmcv build failed (compiler output above)"
        rm -rf "$BUILD_DIR"
    else
        echo "[install] re-using the mmcv wheel built earlier in $WHEEL_DIR"
    fi
    "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl \
        || die "could not install the built mmcv wheel"
    py_ok "$MMCV_CHECK" || { "$PY" -c "$MMCV_CHECK"; die "mmcv was installed but its ops do not run"; }
    done_step "built and installed"
fi

# 5. The task libraries.
step_start=$SECONDS
log "5/6 mmdet 3.3.0, mmsegmentation 1.2.2, mmpretrain 1.2.0, timm 1.0.31"
if py_ok "
import mmdet, mmseg, mmpretrain, timm
assert (mmdet.__version__, mmseg.__version__, mmpretrain.__version__) == ('3.3.0', '1.2.2', '1.2.0')
assert timm.__version__ == '1.0.31', timm.__version__"; then
    done_step "already installed"
else
    # mmcv is installed above; keep pip from trying to replace it.
    "${PIP[@]}" install -r "$ROOT/requirements/tasks.txt" "mmcv==${MMCV_VERSION}" \
        "torch==$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')" \
        || die "could not install mmdet/mmseg/mmpretrain/timm"
    done_step "installed"
fi

# 6. This project, editable.
step_start=$SECONDS
log "6/6 mmvheat (editable)"
if py_ok "
import os, mmvheat
assert os.path.realpath(os.path.dirname(mmvheat.__file__)) == os.path.realpath('$ROOT/mmvheat')"; then
    done_step "already installed from $ROOT"
else
    "${PIP[@]}" install --no-build-isolation --no-deps -e "$ROOT" || die "could not install mmvheat"
    done_step "installed"
fi

# --- deployment extras (ONNX export / ONNX Runtime, requirements/deploy.txt)
step_start=$SECONDS
log "deploy: onnx, onnxruntime, onnxscript (requirements/deploy.txt)"
if py_ok "
import onnx, onnxruntime, onnxscript
assert (onnx.__version__, onnxruntime.__version__) == ('1.23.2', '1.32.0')"; then
    done_step "already satisfied"
else
    "${PIP[@]}" install -r "$ROOT/requirements/deploy.txt" \
        || die "could not install the deployment requirements"
    done_step "installed"
fi
# --- end of deployment extras

log "checking the stack"
(cd / && "$PY" -) <<'EOF' || die "the stack check failed"
import torch, torchvision, mmengine, mmcv, mmdet, mmseg, mmpretrain, mmvheat, timm
import mmvheat.timm  # noqa: F401 (vheat_* in timm's registry)
from mmcv.ops import nms, RoIAlign  # noqa: F401 (compiled ops)
for name, mod in [('torch', torch), ('torchvision', torchvision), ('mmengine', mmengine),
                  ('mmcv', mmcv), ('mmdet', mmdet), ('mmseg', mmseg),
                  ('mmpretrain', mmpretrain), ('timm', timm), ('mmvheat', mmvheat)]:
    print(f'  {name:12s} {mod.__version__}')
print(f'  mmcv.ops     compiled ops ok')
EOF
log "done in $((SECONDS - START)) s"
