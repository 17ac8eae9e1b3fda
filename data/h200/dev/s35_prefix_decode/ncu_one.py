"""One prefix_decode call of c3 B2048 32/8 P4096 S64 (after a warm-up), for ncu: where the fused kernel's time goes.
    ncu --kernel-name regex:prefix_kernel --launch-skip 1 --launch-count 1 --section SpeedOfLight python3 ncu_one.py
"""
import torch

from tkprefix import tk_hydragen as tkh

r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
q, k, v, sk, sv = r(2048, 1, 32, 128), r(2048, 64, 8, 128), r(2048, 64, 8, 128), r(1, 4096, 8, 128), r(1, 4096, 8, 128)
for _ in range(2):
    tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], prefix_decode=True)
torch.cuda.synchronize()
