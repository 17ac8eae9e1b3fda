"""The decode kernel alone on c3's suffix-64 shapes (B2048, 32/8 and 8/1), after a warm-up, for ncu: why it streams
~1.3 TB/s there (201 us for 268 MB at 32/8 on an H100, data/h200/dev/s36_prefix_decode/ab.csv).
    ncu --kernel-name regex:decode --launch-skip 2 --launch-count 2 --set full python3 ncu_decode.py
"""
import torch

from tkprefix import tk_hydragen as tkh

r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
for Hq, Hkv in ((32, 8), (8, 1)):
    q, k, v = r(2048, 1, Hq, 128), r(2048, 64, Hkv, 128), r(2048, 64, Hkv, 128)
    for _ in range(2):
        tkh.decode_attention(q, k, v)
torch.cuda.synchronize()
