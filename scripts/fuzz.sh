#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted bytes (libFuzzer via cargo-fuzz), outside CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 600 s each, every target in fuzz/Cargo.toml)
#
# Needs the nightly toolchain (cargo-fuzz builds with sanitizer flags); installs cargo-fuzz from crates.io when
# it is missing. Fuzzing starts from the hand-made seeds in fuzz/seeds/<target>/; new interesting inputs land in
# fuzz/corpus/<target>/ and are minimised at the end (cargo fuzz cmin); commit them: tests/fuzz_corpus.rs
# replays seeds and corpus on stable in every test run. A crash stops
# the script with its input under fuzz/artifacts/<target>/: fix the parser, then copy the input into the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly); cargo-fuzz needs it" >&2
    exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
# capi_score opens a detector through wf_detector_open, which loads onnxruntime (docs/FUZZING.md).
if [[ " ${targets[*]} " == *" capi_score "* ]] && [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(scripts/setup-ort.sh)"
    export ORT_DYLIB_PATH
fi
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)
    (cd fuzz && cargo +nightly fuzz cmin "$target" "corpus/$target" >/dev/null 2>&1)
    echo "== $target: no crash; corpus $(ls "fuzz/corpus/$target" | wc -l) inputs"
done
