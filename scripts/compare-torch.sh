#!/usr/bin/env bash
# The PyTorch CPU comparison of docs/PERFORMANCE.md (issue 7), in one run on this machine: times generation
# (onnxruntime) and the ensemble forward (native, one thread) on a bundle, then the same computations in
# PyTorch eager (tools/torch_compare.py), checks that the outputs agree and prints the ratios.
#
#   scripts/compare-torch.sh [BUNDLE] [RUNS]     (defaults: runs/quickstart/detector.wfb, 5)
#
# Installs torch (CPU use of the PyPI wheel) and onnx into the git-ignored .venv-torch/ on first use (a few
# GB: the PyPI wheel brings CUDA libraries it does not use here). Outside CI.
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=${1:-runs/quickstart/detector.wfb}
runs=${2:-5}
if [ ! -f "$bundle" ]; then
    echo "compare-torch: no bundle at $bundle (./scripts/quickstart.sh writes runs/quickstart/detector.wfb)" >&2
    exit 2
fi
venv=.venv-torch
if ! "$venv/bin/python" -c 'import torch, onnx' >/dev/null 2>&1; then
    echo "compare-torch: installing torch and onnx from PyPI into $venv/" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.15.0" "onnx==1.23.2" numpy
fi
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(./scripts/setup-ort.sh)}"
out=runs/torch_compare
cargo run --release --quiet --example torch_compare -- "$bundle" "$out" "$runs"
"$venv/bin/python" tools/torch_compare.py "$out"
