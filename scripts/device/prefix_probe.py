"""One launch of each Hydragen kernel in the shapes that miss their targets, for Nsight Compute:
  1. prefix, memory-bound: batch 32 sharing a 4096 prefix, 32/32 heads (the decode-step config), splits 4, cw 2
  2. prefix, compute-bound: batch 1024, prefix 2048, 32/8 heads, cw 2, one split
  3. decode: batch 32, 512 keys each, 32/32 heads
Usage: ncu -k regex:"prefix_kernel|decode_kernel" -c 3 --clock-control none --section SpeedOfLight \
         --section MemoryWorkloadAnalysis python scripts/device/prefix_probe.py
"""
import torch

from tkprefix import tk_hydragen as tkh

dt = torch.bfloat16
q = torch.randn(32, 1, 32, 128, device="cuda", dtype=dt)
pk, pv = (torch.randn(1, 4096, 32, 128, device="cuda", dtype=dt) for _ in range(2))
tkh.prefix_attention(q, pk, pv, n_splits=4, consumer_warpgroups=2)
q2 = torch.randn(1024, 1, 32, 128, device="cuda", dtype=dt)
pk2, pv2 = (torch.randn(1, 2048, 8, 128, device="cuda", dtype=dt) for _ in range(2))
tkh.prefix_attention(q2, pk2, pv2, n_splits=1, consumer_warpgroups=2)
k, v = (torch.randn(32, 512, 32, 128, device="cuda", dtype=dt) for _ in range(2))
tkh.decode_attention(q, k, v, torch.full((32,), 512, device="cuda", dtype=torch.int32), n_splits=1)
torch.cuda.synchronize()
print("probe done")
