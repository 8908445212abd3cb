#!/usr/bin/env bash
# The `cuda` feature on a GPU machine (issue 7): the CPU/CUDA agreement tests (tests/cuda.rs), then training
# and generation timed on the CPU and on the GPU of the same machine. Every step has a time limit and the
# script goes on past a failed one, so one run reports everything it could measure. Results: OUT_DIR/summary.txt
# (one line per step: name, exit status, seconds) and OUT_DIR/gpu-check.tar.gz (every log and JSON report).
#
#   scripts/gpu-check.sh [OUT_DIR]
#       builds the CLI and the test binary with --features cuda (needs nvcc on PATH);
#   WF=path/to/weightflow WF_CUDA_TESTS=path/to/cuda-test-binary scripts/gpu-check.sh OUT_DIR
#       runs prebuilt binaries, for a GPU machine without a Rust toolchain (build elsewhere with
#       CUDA_COMPUTE_CAP set to the GPU's, e.g. 90 for an H100/H200).
#
# GPU_CHECK_SECTIONS picks sections (default: "tests uci generate mnist base", about 8 minutes on an H200 machine).
# docs/PERFORMANCE.md ("GPU training") records a run of it.
set -uo pipefail
OUT_DIR=$(mkdir -p "${1:-gpu-check}" && cd "${1:-gpu-check}" && pwd)
WORK=$(mktemp -d)
LOGS=$WORK/logs
mkdir -p "$LOGS"

if [ -z "${WF:-}" ]; then
    cargo build --release --features cuda --bin weightflow || exit 1
    WF=target/release/weightflow
    WF_CUDA_TESTS=$(cargo test --release --features cuda --test cuda --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
fi

# step NAME SECONDS CMD...: runs CMD with its output in logs/NAME.log, and records its status and wall time.
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    printf '%-28s rc=%-4s %5ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$OUT_DIR/summary.txt"
    # Packed after every step, so a run stopped by an outer time limit still leaves what it measured.
    cp "$OUT_DIR/summary.txt" "$LOGS/"
    tar -czf "$OUT_DIR/gpu-check.tar.gz" -C "$WORK" logs
}

: > "$OUT_DIR/summary.txt"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; uname -m; } \
    > "$LOGS/machine.txt" 2>&1
cat "$LOGS/machine.txt"

SECTIONS=" ${GPU_CHECK_SECTIONS:-tests uci generate mnist base} "
section() { [[ $SECTIONS == *" $1 "* ]]; }

# 1. Agreement with the CPU, each test printing the differences it measured.
section tests && step tests 240 "$WF_CUDA_TESTS" --nocapture --test-threads 1

# 2. UCI heart: the default trajectory set and CFM meta-model, trained on each device and evaluated alike.
if section uci || section generate; then
    step uci-base 120 "$WF" train-base --dataset uci-heart --out "$WORK/uci" --quiet
fi
section uci && for dev in cpu cuda; do
    step "uci-meta-$dev" 240 sh -c "'$WF' train-meta --trajectories '$WORK/uci' --device $dev --out '$WORK/uci-$dev' \
        --json --quiet > '$LOGS/uci-meta-$dev.json'"
    step "uci-eval-$dev" 240 sh -c "'$WF' eval-gen --meta '$WORK/uci-$dev' --trajectories '$WORK/uci' \
        --device $dev --json > '$LOGS/uci-eval-$dev.json'"
done

# 3. Generation: 1,000 and 10,000 UCI classifiers with 50 Euler steps (process time includes loading).
section generate && [ ! -d "$WORK/uci-cpu" ] &&
    step uci-meta-cpu 240 "$WF" train-meta --trajectories "$WORK/uci" --steps 200 --out "$WORK/uci-cpu" --quiet
section generate && for dev in cpu cuda; do
    for n in 1000 10000; do
        step "generate-$dev-$n" 120 "$WF" generate --meta "$WORK/uci-cpu" --device "$dev" -n "$n" --steps 50 \
            --seed 1 --out "$WORK/gen-$dev-$n.safetensors"
    done
done

# 4. MNIST 784-32-10: 256 runs, then the default CFM (2,000 steps) on the GPU, and 5 and 65 steps on each device
#    for the per-step time ((t65 - t5) / 60, as in docs/PERFORMANCE.md).
section mnist && step mnist-base 300 "$WF" train-base --dataset mnist --runs 256 --out "$WORK/mnist" --quiet
section mnist && for dev in cpu cuda; do
    for s in 5 65; do
        step "mnist-meta-$dev-$s" 180 "$WF" train-meta --trajectories "$WORK/mnist" --device "$dev" --steps "$s" \
            --out "$WORK/mnist-$dev-$s" --quiet
    done
done
section mnist && step mnist-meta-cuda-full 300 sh -c "'$WF' train-meta --trajectories '$WORK/mnist' --device cuda \
    --out '$WORK/mnist-cuda' --json --quiet > '$LOGS/mnist-meta-cuda.json'"
section mnist && step mnist-eval-cuda 300 sh -c "'$WF' eval-gen --meta '$WORK/mnist-cuda' --trajectories '$WORK/mnist' --init-n 16 \
    --device cuda --json > '$LOGS/mnist-eval-cuda.json'"

# 5. Base training with candle on the GPU against the native CPU engine above (the same runs and epochs).
section base && step uci-base-cuda 180 "$WF" train-base --dataset uci-heart --device cuda --out "$WORK/uci-gpu" --quiet
section base && step mnist-base-cuda 240 "$WF" train-base --dataset mnist --runs 256 --device cuda --out "$WORK/mnist-gpu" --quiet

rm -rf "$WORK"
