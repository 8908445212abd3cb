#!/usr/bin/env bash
# The README's main job in one command on a fresh machine: installs onnxruntime's shared library (PyPI wheel,
# into the git-ignored .venv/, via scripts/setup-ort.sh; a no-op when already there), then runs
# `weightflow quickstart` (release build) with ORT_DYLIB_PATH set. Extra arguments go to quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH="$(./scripts/setup-ort.sh)"
export ORT_DYLIB_PATH
exec cargo run --release -- quickstart "$@"
