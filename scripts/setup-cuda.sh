#!/usr/bin/env bash
# Assembles a CUDA 13.0 build toolkit from PyPI wheels (nvcc, the runtime, CRT and CCCL headers, NVVM, nvrtc,
# cuBLAS, cuRAND) for `cargo build --features cuda` on a machine without a CUDA installation, and prints the
# environment to build with. Only a *build* toolkit: the binary runs where an NVIDIA driver and the CUDA 13
# libraries are (PyTorch's cu13 wheels or a CUDA toolkit carry them).
#
#   eval "$(scripts/setup-cuda.sh [DIR])"      # DIR defaults to .cuda (ignored by git)
#   CUDA_COMPUTE_CAP=90 cargo build --release --features cuda
#
# Why 13.0: the PTX candle's kernels are compiled to must not be newer than the driver that loads it (a 580
# driver reads PTX of CUDA ≤ 13.0). The link needs libcuda.so, which ships with the driver, not in any wheel: a
# stub exporting the driver functions cudarc declares stands in for it at link time (soname libcuda.so.1, so
# the real driver library is what the binary loads).
set -euo pipefail
DIR=$(mkdir -p "${1:-.cuda}" && cd "${1:-.cuda}" && pwd)
ROOT=$DIR/cu13
if [ ! -x "$ROOT/bin/nvcc" ]; then
    WHEELS=$DIR/wheels
    mkdir -p "$WHEELS"
    python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 \
        -d "$WHEELS" nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 \
        nvidia-nvvm==13.0.88 nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 \
        nvidia-cuda-cccl==13.0.85 >&2
    rm -rf "$DIR/unpacked"
    for w in "$WHEELS"/*.whl; do python3 -m zipfile -e "$w" "$DIR/unpacked"; done
    mv "$DIR/unpacked/nvidia/cu13" "$ROOT"
    rm -rf "$DIR/unpacked" "$WHEELS"
    chmod +x "$ROOT"/bin/* "$ROOT"/nvvm/bin/*
    # The linker looks for the unversioned names.
    for lib in cudart nvrtc curand cublas cublasLt; do
        (cd "$ROOT/lib" && ln -sf "$(ls "lib$lib.so."* | head -1)" "lib$lib.so")
    done
fi
if [ ! -f "$ROOT/lib/stubs/libcuda.so" ]; then
    CUDARC=$(cargo metadata --format-version 1 --features cuda 2>/dev/null |
        python3 -c 'import json,sys,os; print(os.path.dirname([p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"][0]))')
    mkdir -p "$ROOT/lib/stubs"
    grep -oE 'fn cu[A-Za-z0-9_]+\(' "$CUDARC/src/driver/sys/mod.rs" | sort -u | sed 's/fn \(.*\)(/void \1(void){}/' \
        > "$ROOT/lib/stubs/libcuda_stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 "$ROOT/lib/stubs/libcuda_stub.c" -o "$ROOT/lib/stubs/libcuda.so"
fi
echo "export CUDA_HOME='$ROOT' PATH='$ROOT/bin':\"\$PATH\" LIBRARY_PATH='$ROOT/lib/stubs:$ROOT/lib'"
echo "export CUDA_COMPUTE_CAP=\"\${CUDA_COMPUTE_CAP:-90}\""
