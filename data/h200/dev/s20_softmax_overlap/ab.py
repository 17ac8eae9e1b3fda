"""One build's prefix_attention (the automatic plan) on the shapes that run the overlapped loop, plus a serial-loop
control; run once per build (variants.py), the builds alternated. Every output is checked against fp32 on 4
sequences after o is poisoned with NaN; then the graphs are replayed interleaved after the L2 flush (median of 30).
Prints CSV: tag,B,Hq,Hkv,P,median_us,tflops,rel_err,nan"""
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

TAG = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
SHAPES = [(1024, 32, 8, 2048), (2048, 8, 1, 4096), (2048, 32, 8, 4096), (4096, 8, 1, 8192), (1024, 32, 8, 16384),
          (1024, 32, 8, 2000), (128, 32, 32, 16384), (128, 16, 16, 16384), (512, 32, 8, 1024)]
torch.manual_seed(0)
runs, info, keep = {}, {}, []
for B, Hq, Hkv, P in SHAPES:
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    k, v = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    o = torch.full_like(q, float("nan"))
    lse = torch.full(q.shape[:3], float("nan"), device=dev)
    launch = lambda q=q, k=k, v=v, o=o, lse=lse: tkh.prefix_attention(q, k, v, out=(o, lse))
    launch()
    torch.cuda.synchronize()
    rows = torch.linspace(0, B - 1, 4).long()
    R = Hq // Hkv
    s = torch.einsum("bhd,phd->bhp", q[rows, 0].float(), k[0].float().repeat_interleave(R, 1)) / D ** 0.5
    ref = torch.einsum("bhp,phd->bhd", s.softmax(-1), v[0].float().repeat_interleave(R, 1))
    info[(B, Hq, Hkv, P)] = (((o[rows, 0].float() - ref).norm() / ref.norm()).item(),
                             int(o.isnan().sum()) + int(lse.isnan().sum()))
    runs[(B, Hq, Hkv, P)] = capture_graph(launch)[0].replay
    keep.append((launch, q, k, v, o, lse))   # the graphs' tensors stay alive (a capture empties the allocator cache)
for (B, Hq, Hkv, P), xs in time_interleaved(runs, 30, L2Flusher(device=dev)).items():
    us = statistics.median(xs)
    err, nan = info[(B, Hq, Hkv, P)]
    print(f"{TAG},{B},{Hq},{Hkv},{P},{us:.2f},{4 * B * Hq * P * D / us / 1e6:.0f},{err:.2e},{nan}", flush=True)
