"""Kernel folders whose prefix.cu runs the overlapped loop (compute-bound items) on o<N>s<S>: N-key tiles
(KV_ROWS_OVERLAP), S stages (OVERLAP_STAGES); the serial loop keeps 128 keys (176 for bit 2). Suffix nf:
PROXY_FENCE_PER_WGMMA = false (no fence.proxy.async before each wgmma issue, in both loops).
Usage: python3 variants.py DEST"""
import shutil
import sys
from pathlib import Path

dest = Path(sys.argv[1])
src = Path("kernels/hydragen/prefix.cu").read_text()
EDITS = [("constexpr int KV_ROWS_OVERLAP = 128;", "constexpr int KV_ROWS_OVERLAP = {n};"),
         ("constexpr int OVERLAP_STAGES = 2;", "constexpr int OVERLAP_STAGES = {s};"),
         ("constexpr bool PROXY_FENCE_PER_WGMMA = true;", "constexpr bool PROXY_FENCE_PER_WGMMA = {f};")]
for old, _ in EDITS:
    assert src.count(old) == 1, old
for n, s, nf in ((128, 2, ""), (128, 2, "nf"), (96, 2, ""), (96, 2, "nf"), (112, 2, ""), (64, 2, "")):
    d = dest / f"o{n}s{s}{nf}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree("kernels", d)
    t = src
    for old, new in EDITS:
        t = t.replace(old, new.format(n=n, s=s, f="false" if nf else "true"))
    (d / "hydragen" / "prefix.cu").write_text(t)
    print(d)
