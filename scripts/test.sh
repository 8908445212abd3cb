#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, the Rust tests (unit, integration, doc), and a
# build of the candle-free library a scoring service links. Installs what it needs; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) and rerun" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "onnxruntime and onnx into .venv/ (scripts/setup-ort.sh)"
ORT_DYLIB_PATH="$(./scripts/setup-ort.sh)"
export ORT_DYLIB_PATH
echo "ORT_DYLIB_PATH=$ORT_DYLIB_PATH" >&2

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --all-targets -- -D warnings

step "library without candle (what a scoring service links)"
cargo build --lib --no-default-features
cargo build --lib --no-default-features --features runtime

step "cargo doc (broken intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib

step "cargo test"
cargo test --all-targets
cargo test --doc

step "C ABI consumers: the C example (and valgrind), Go and Java bindings"
./scripts/test-bindings.sh
