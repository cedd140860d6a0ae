#!/usr/bin/env bash
# Idempotent set-up: makes .venv/ at the repo root and installs sam2web's dependencies.
#   scripts/setup.sh          runtime dependencies (the app and the CLI)
#   scripts/setup.sh --test   plus test dependencies and Debian's chromium for the browser test
#
# torch: `torch==2.13.0` from PyPI is a CUDA build on Linux x86_64 and a CPU/MPS build on macOS.
# To choose a specific wheel (e.g. CPU-only or another CUDA version) set TORCH_INDEX_URL, e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu scripts/setup.sh
# sam2 1.1.0 is installed without its dependencies: its `torchvision` requirement would pull a
# second, multi-GB torch, and the video predictor never imports torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install --quiet --upgrade pip==25.3 >/dev/null 2>&1 || true
TORCH_SPEC=$(grep -E '^torch==' requirements.txt)
if ! $VPY -c "import torch" >/dev/null 2>&1; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    $VPY -m pip install --quiet "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
  else
    $VPY -m pip install --quiet "$TORCH_SPEC"
  fi
fi
$VPY -m pip install --quiet -r requirements.txt
# bioio-nd2 (Nikon ND2) without its declared s3fs: sam2web reads local files only, and s3fs pulls
# aiobotocore/botocore and an older python-dateutil than the app's. Its real needs (nd2, bioio-base,
# dask, xarray) are pinned in requirements.txt.
if ! $VPY -c "import bioio_nd2" >/dev/null 2>&1; then
  $VPY -m pip install --quiet --no-deps bioio-nd2==2.6.0
fi
# pylibCZIrw (CZI files) without its declared dependencies: cmake is a build tool it never imports.
if ! $VPY -c "import pylibCZIrw" >/dev/null 2>&1; then
  $VPY -m pip install --quiet --no-deps pylibCZIrw==6.1.0
fi
if ! $VPY -c "import sam2.sam2_video_predictor" >/dev/null 2>&1; then
  SAM2_BUILD_CUDA=0 $VPY -m pip install --quiet --no-deps --no-build-isolation sam2==1.1.0
fi
# sam2web itself, editable: the `sam2web` console script and imports without path tricks.
$VPY -m pip install --quiet --no-deps --no-build-isolation -e .
if [ "${1:-}" = "--test" ]; then
  $VPY -m pip install --quiet -r requirements-test.txt
  if [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
    else
      echo "Install Chromium at /usr/bin/chromium for the browser test (or it will be skipped)." >&2
    fi
  fi
fi
$VPY -c "import torch, sam2, streamlit; print('sam2web set-up OK: torch', torch.__version__, '| CUDA' if torch.cuda.is_available() else '| CPU')"
