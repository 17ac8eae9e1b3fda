#!/usr/bin/env bash
# Extract upstream ChunkAttention (microsoft/chunk-attention at the Dockerfile's commit) and the four repositories its
# CMake FetchContent would download (pybind11 v2.13.6, spdlog v1.13.0, googletest v1.14.0, NVTX release-v3-c-cpp)
# from the fetched mirrors into git-ignored third_party/, stripped of tests, docs and images so the copy is small
# enough to carry to the GPU machine. Run once here; build_chunk_attn_upstream.sh builds it offline on the GPU machine.
# Usage (repository root): bash scripts/peers/fetch_chunk_attn_upstream.sh [mirror_root]
set -euo pipefail
cd "$(dirname "$0")/../.."
MIRROR=${1:-/work/.mirror}
COMMIT=$(sed -n 's/.*CHUNK_ATTN_COMMIT=\([0-9a-f]\{40\}\).*/\1/p' Dockerfile)
CA=third_party/chunk-attention
DEPS=$CA/deps
rm -rf "$CA"
mkdir -p "$DEPS"/{pybind11,spdlog,googletest,nvtx}
extract() {  # extract <mirror> <ref> <dest> [paths...]
  local repo=$MIRROR/$1/repo ref=$2 dest=$3
  shift 3
  git --git-dir "$repo" archive --format=tar "$ref" "$@" | tar x -C "$dest"
}
extract microsoft+chunk-attention "$COMMIT" "$CA" CMakeLists.txt cmake cpp \
  third_party src LICENSE pyproject.toml
echo "$COMMIT" > "$CA/COMMIT"
extract pybind+pybind11 v2.13.6 "$DEPS/pybind11" CMakeLists.txt include tools LICENSE pybind11
extract gabime+spdlog v1.13.0 "$DEPS/spdlog" CMakeLists.txt cmake include src LICENSE
extract google+googletest v1.14.0 "$DEPS/googletest" CMakeLists.txt googletest/CMakeLists.txt googletest/cmake \
  googletest/include googletest/src LICENSE
extract NVIDIA+NVTX release-v3-c-cpp "$DEPS/nvtx" .
du -sh "$CA"
