#!/usr/bin/env bash
# Download FlashInfer + apache-tvm-ffi wheels for the GPU machine (Python 3.12, x86-64) into .whl/ (git-ignored) and
# repack FlashInfer without CUDA sources the harness never JIT-builds, so TK + wheels fit one call's 64 MiB carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl /tmp/whl_orig
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  -d /tmp/whl_orig flashinfer-python==0.7.2.post1 apache-tvm-ffi==0.1.15.post2
cp /tmp/whl_orig/apache_tvm_ffi-*.whl .whl/
python3 - <<'PY'
import glob, zipfile
src = glob.glob("/tmp/whl_orig/flashinfer_python-*.whl")[0]
dst = ".whl/" + src.rsplit("/", 1)[1]
drop = tuple("flashinfer/data/csrc/" + d for d in (
    "cake_sampling/", "cake_dsv4/", "fused_moe/", "kda/", "gdn/", "experimental/", "cake_sage_block_sparse_attention/",
    "cake_trtllm_moe_allreduce_union/", "alphamoe", "cake_fmha/"))
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        if info.filename.startswith(drop):
            continue
        data = zi.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            data = ("\n".join(l for l in data.decode().splitlines() if not l.startswith(drop)) + "\n").encode()
        zo.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
print("wrote", dst)
PY
du -sh .whl
