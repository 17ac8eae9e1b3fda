#!/usr/bin/env bash
# Put the Triton tree peers into third_party/ (git-ignored; carried to the GPU machine, never committed):
#   third_party/FastTree-Artifact/kernel_bench/{fasttree,DeFT,kv_tree_simple}.py  (PanZaifeng/FastTree-Artifact at $COMMIT)
#   third_party/FastTree-Artifact/sglang/srt/layers/decode_attention.py          (the sglang==0.2.13 wheel's file: the
#       kernel behind the artifact's kernel_bench/sglang_triton.py, which imports it from the pinned sglang 0.2.13)
# plus COMMIT / SGLANG_VERSION files that the adapters record. Run from anywhere; needs the mirror (or FASTTREE_MIRROR).
set -euo pipefail
cd "$(dirname "$0")/../.."
COMMIT=167928b56513d8ac4ae4948da70b9f6ef07d8f5f
MIRROR=${FASTTREE_MIRROR:-/work/.mirror/PanZaifeng+FastTree-Artifact/repo}
DEST=third_party/FastTree-Artifact
rm -rf "$DEST" && mkdir -p "$DEST"
git --git-dir="$MIRROR" archive "$COMMIT" kernel_bench/fasttree.py kernel_bench/DeFT.py kernel_bench/kv_tree_simple.py \
  kernel_bench/sglang_triton.py LICENSE README.md | tar -x -C "$DEST"
echo "$COMMIT" > "$DEST/COMMIT"
tmp=$(mktemp -d)
python3 -m pip download --no-deps -q -d "$tmp" sglang==0.2.13
python3 - "$tmp" "$DEST" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/sglang-0.2.13-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extract("sglang/srt/layers/decode_attention.py", sys.argv[2])
open(sys.argv[2] + "/SGLANG_VERSION", "w").write("0.2.13\n")
PY
rm -rf "$tmp"
find "$DEST" -type f | sort
