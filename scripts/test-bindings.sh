#!/usr/bin/env bash
# The C ABI's consumers against the library built in this run: the C example (built with its Makefile, run
# plainly and under valgrind), the Go binding (go test) and the Java binding (mvn test). Called by
# scripts/test.sh after the Rust tests; needs cc and make; valgrind, go and mvn steps run where installed
# (CI's machine has all three) and say so when skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

step() { printf '\n==> %s\n' "$*" >&2; }
# A consumer's toolchain may be missing on a developer's machine (skip, and say so); CI's machine has them all,
# so there a missing one fails the run instead of passing it silently.
missing() {
  if [ "${CI:-}" = "true" ]; then
    echo "$1 not installed, and CI must run every consumer: failing" >&2
    exit 1
  fi
  echo "$1 not installed: skipping $2" >&2
}

step "libweightflow.so (debug, default features: runtime included)"
cargo build --lib
lib="$root/target/debug"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step "fixture: a calibrated bundle, a window and the Rust runtime's score of it (tests/capi_runtime.rs)"
fixture="$work/fixture"
WF_WRITE_FIXTURE="$fixture" cargo test -q --test capi_runtime
test -s "$fixture/expected.json" || { echo "no fixture written (is onnxruntime set up?)" >&2; exit 1; }
cat "$fixture/expected.json" >&2; echo >&2

step "examples/c: build score_window, score the fixture, compare with the Rust runtime"
make -s -C examples/c PROFILE=debug
seed="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seed"])' "$fixture/expected.json")"
./examples/c/score_window "$fixture/bundle.wfb" "$fixture/window.csv" "$seed" | tee "$work/c.json" >&2
python3 - "$fixture/expected.json" "$work/c.json" <<'PY'
import json, sys
want, got = (json.load(open(p)) for p in sys.argv[1:3])
assert abs(got["p_value"] - want["p_value"]) <= 1e-6 and got["is_shift"] == want["is_shift"], (got, want)
PY

step "examples/c under valgrind: scoring the fixture (leaks and invalid accesses are errors)"
if command -v valgrind >/dev/null; then
  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
    --suppressions=examples/c/valgrind.supp ./examples/c/score_window "$fixture/bundle.wfb" "$fixture/window.csv" "$seed" >/dev/null
else
  missing valgrind "the valgrind run (apt-get install valgrind)"
fi

step "examples/c: a missing bundle fails cleanly (exit 2, the library's status and message)"
printf 'a,b,c\n0.1,0.2,0.3\n0.4,0.5,0.6\n' >"$work/window.csv"
set +e
./examples/c/score_window "$work/missing.wfb" "$work/window.csv" 7 2>"$work/c.err"
rc=$?
set -e
cat "$work/c.err" >&2
if [ "$rc" -ne 2 ] || ! grep -q "WF_STATUS_IO" "$work/c.err"; then
  echo "score_window: expected exit 2 with WF_STATUS_IO, got $rc" >&2
  exit 1
fi
if command -v valgrind >/dev/null; then
  step "examples/c under valgrind: the failure path"
  set +e
  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
    ./examples/c/score_window "$work/missing.wfb" "$work/window.csv" 7 2>"$work/vg.err"
  rc=$?
  set -e
  cat "$work/vg.err" >&2
  if [ "$rc" -ne 2 ]; then
    echo "valgrind reported errors (exit $rc)" >&2
    exit 1
  fi
else
  missing valgrind "the valgrind run of the failure path"
fi

step "scripts/install.sh into a temporary prefix; score_window built through pkg-config"
PROFILE=debug ./scripts/install.sh "$work/prefix" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
test "$(pkg-config --modversion weightflow)" = "$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
# shellcheck disable=SC2046 # pkg-config's output is meant to split into arguments
cc -std=c11 -Wall -Werror examples/c/score_window.c $(pkg-config --cflags --libs weightflow) -o "$work/score_window"
LD_LIBRARY_PATH="$work/prefix/lib" "$work/score_window" 2>/dev/null && exit 1 || test $? -eq 1 # usage error

if command -v go >/dev/null; then
  step "bindings/go: go test"
  (cd bindings/go && WF_FIXTURE_DIR="$fixture" CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib" go test -count=1 -v ./... |
    grep -E '^(--- |ok|FAIL|PASS)')
else
  missing go bindings/go
fi

if command -v mvn >/dev/null; then
  step "bindings/java: mvn test"
  (cd bindings/java && mvn -B -q -Dweightflow.lib.dir="$lib" -Dweightflow.fixture.dir="$fixture" test)
  grep -h "Tests run" bindings/java/target/surefire-reports/*.txt >&2
else
  missing mvn bindings/java
fi
