#!/usr/bin/env bash
# Installs onnxruntime's shared library (from the PyPI `onnxruntime` wheel) and `onnx` (for onnx.checker in the
# tests) into the project-local, git-ignored virtualenv .venv/, then prints the path of libonnxruntime.so* on
# stdout. Idempotent: when .venv already has both packages it installs nothing and only prints the path.
# Use: export ORT_DYLIB_PATH="$(./scripts/setup-ort.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
py="$venv/bin/python"
if ! "$py" -c 'import onnxruntime, onnx' >/dev/null 2>&1; then
  echo "setup-ort: installing onnxruntime and onnx from PyPI into $venv/" >&2
  python3 -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "onnxruntime==1.32.0" "onnx==1.23.2" >&2
fi

lib=$("$py" - <<'PY'
import glob, os, onnxruntime
found = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))
print(os.path.abspath(found[0]) if found else "")
PY
)
if [ -z "$lib" ]; then
  echo "setup-ort: the onnxruntime wheel in $venv/ has no libonnxruntime.so*" >&2
  exit 1
fi
echo "$lib"
