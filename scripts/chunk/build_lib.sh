#!/usr/bin/env bash
# Build the ChunkAttention kernels into a standalone shared library (ctypes path of tkprefix.tk_chunk):
#   build/chunk/libtkchunk.so  (the .cu needs only TK + CUDA: no torch, no GPU to compile)
# Flags as in ARCHITECTURE.md. The library links the CUDA runtime dynamically (libcudart.so.13, shared with torch's)
# and leaves the driver API (cuTensorMapEncodeTiled) to libcuda.so.1, which tk_chunk loads first.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${THUNDERKITTENS_ROOT:=$PWD/third_party/ThunderKittens}"
mkdir -p build/chunk
nvcc -std=c++20 -O3 --use_fast_math --expt-extended-lambda --expt-relaxed-constexpr -DKITTENS_HOPPER \
  -gencode arch=compute_90a,code=sm_90a -Xcompiler -fPIC -Xptxas -v \
  -I"$THUNDERKITTENS_ROOT/include" -I"$THUNDERKITTENS_ROOT/prototype" -Ikernels/chunk_attn \
  -c kernels/chunk_attn/chunk_attn.cu -o build/chunk/chunk_attn.o 2> build/chunk/ptxas.log
grep -E "spill|registers" build/chunk/ptxas.log | paste - - | sed 's/ptxas info    ://g' | sort | uniq -c | head -20
nvcc -shared -cudart shared -gencode arch=compute_90a,code=sm_90a -o build/chunk/libtkchunk.so build/chunk/chunk_attn.o
echo "built build/chunk/libtkchunk.so"
