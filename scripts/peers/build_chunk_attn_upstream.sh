#!/usr/bin/env bash
# Build upstream ChunkAttention's extension (chunk_attn_c, CUDA kernels for sm_90) OFFLINE from the copy that
# fetch_chunk_attn_upstream.sh extracted into third_party/chunk-attention (its FetchContent dependencies under deps/).
# Two edits, made in that git-ignored copy only (never committed): CUDA_ARCHITECTURES "86" -> "90", and its
# hard-coded -D_GLIBCXX_USE_CXX11_ABI=0 -> torch's ABI. The module lands in third_party/chunk-attention/src/chunk_attn/lib,
# where the harness's chunk_attn_upstream adapter imports it from (or from $CHUNK_ATTN_SRC).
# Usage (repository root): bash scripts/peers/build_chunk_attn_upstream.sh [extra cmake -D args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
CA=$(pwd)/third_party/chunk-attention
DEPS=$CA/deps
[ -f "$CA/CMakeLists.txt" ] || { echo "no $CA: run scripts/peers/fetch_chunk_attn_upstream.sh first" >&2; exit 2; }
PY=${PYTHON:-python3}
ABI=$($PY -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
PYEXE=$($PY -c 'import sys; print(sys.executable)')  # the real interpreter (not a pyenv shim)
TORCH_DIR=$($PY -c 'import os, torch; print(os.path.dirname(torch.__file__))')
sed -i 's/CUDA_ARCHITECTURES "86"/CUDA_ARCHITECTURES "90"/' "$CA/cpp/chunk_attn/CMakeLists.txt"
grep -q 'CUDA_ARCHITECTURES "90"' "$CA/cpp/chunk_attn/CMakeLists.txt"
sed -i "s/-D_GLIBCXX_USE_CXX11_ABI=[01]/-D_GLIBCXX_USE_CXX11_ABI=$ABI/" "$CA/CMakeLists.txt"
grep -q "_GLIBCXX_USE_CXX11_ABI=$ABI" "$CA/CMakeLists.txt"
# torch's ATen/cuda headers include cuSPARSE/cuBLAS/cuSOLVER headers: where the CUDA toolkit lacks them, use the
# ones of the pip nvidia-* packages torch was installed with
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_INC=$(dirname "$(dirname "$(readlink -f "$NVCC")")")/include
EXTRA_INC=$($PY - "$CUDA_INC" <<'PY'
import glob, os, site, sys
dirs = []
for h in ("cusparse.h", "cublas_v2.h", "cublasLt.h", "cusolverDn.h", "cusolver_common.h"):
    if os.path.isfile(os.path.join(sys.argv[1], h)):
        continue
    for sp in site.getsitepackages():
        hit = sorted(glob.glob(os.path.join(sp, "nvidia", "**", "include", h), recursive=True))
        if hit and os.path.dirname(hit[0]) not in dirs:
            dirs.append(os.path.dirname(hit[0]))
            break
print(" ".join("-I" + d for d in dirs))
PY
)
[ -z "$EXTRA_INC" ] || echo "CUDA library headers from pip packages: $EXTRA_INC"
# A module built here before from the same sources, torch, Python and nvcc (its stamp) is reused: the build is the
# longest step of a recording (7-9 min on the H200 machine), and device_run.sh brings the module back for the next
# fresh machine to reuse (scripts/bench/README.md).
LIB=$CA/src/chunk_attn/lib
VERSIONS=$($PY -c 'import sys, torch; print(f"torch {torch.__version__}, Python {sys.version.split()[0]}")')
STAMP="commit $(cat "$CA/COMMIT"), $VERSIONS, $("$NVCC" --version | tail -1), sm_90, CXX11 ABI $ABI"
if ls "$LIB"/chunk_attn_c*.so >/dev/null 2>&1 && [ "$(cat "$LIB/BUILD_STAMP" 2>/dev/null)" = "$STAMP" ]; then
    echo "reused $(ls "$LIB"/chunk_attn_c*.so) ($STAMP)"
    exit 0
fi
BUILD=$CA/build
# a build folder configured elsewhere (another checkout path or torch) is stale: start again
grep -qs "CMAKE_HOME_DIRECTORY:INTERNAL=$CA\$" "$BUILD/CMakeCache.txt" && grep -qs "$TORCH_DIR" "$BUILD/CMakeCache.txt" \
  || rm -rf "$BUILD"
cmake -S "$CA" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DUSE_MKL=OFF -DUSE_CUDA=ON \
  -DTORCH="$TORCH_DIR" -DPython3_EXECUTABLE="$PYEXE" -DPYTHON_EXECUTABLE="$PYEXE" \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_FLAGS="$EXTRA_INC" -DCMAKE_CXX_FLAGS="$EXTRA_INC" \
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
  -DFETCHCONTENT_SOURCE_DIR_PYBIND11="$DEPS/pybind11" -DFETCHCONTENT_SOURCE_DIR_SPDLOG="$DEPS/spdlog" \
  -DFETCHCONTENT_SOURCE_DIR_GOOGLETEST="$DEPS/googletest" -DFETCHCONTENT_SOURCE_DIR_NVTX="$DEPS/nvtx" "$@"
# only the Python module: upstream's default target also runs `pip install -e .` and mypy's stubgen (network)
cmake --build "$BUILD" --target chunk_attn_c -j "${JOBS:-$(nproc)}"
mkdir -p "$LIB"
cp "$BUILD"/cpp/chunk_attn/chunk_attn_c*.so "$LIB/"
echo "$STAMP" > "$LIB/BUILD_STAMP"
echo "built $(ls "$LIB"/chunk_attn_c*.so) ($STAMP)"
