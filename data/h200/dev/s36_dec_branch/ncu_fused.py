"""One fused step (prefix_decode=True) of c3 B2048 P4096 S64 at 8/1 and at 32/8, after a warm-up each, for ncu with
source counters: where the decode warpgroup waits. Inside the fused kernel it streams ~1.3 TB/s at 32/8 (537 MB in
~420 us on an H100), the decode kernel alone 2.7 TB/s (data/h200/dev/s36_prefix_decode).
    ncu --kernel-name regex:prefix_kernel --launch-skip 2 --launch-count 1 --set full python3 ncu_fused.py 8
"""
import sys

import torch

from tkprefix import tk_hydragen as tkh

Hq, Hkv = {"8": (8, 1), "32": (32, 8)}[sys.argv[1]]
r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
q, k, v = r(2048, 1, Hq, 128), r(2048, 64, Hkv, 128), r(2048, 64, Hkv, 128)
sk, sv = r(1, 4096, Hkv, 128), r(1, 4096, Hkv, 128)
for _ in range(3):
    tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], prefix_decode=True)
torch.cuda.synchronize()
