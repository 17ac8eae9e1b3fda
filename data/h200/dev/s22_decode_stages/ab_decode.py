"""One build's decode_attention (the automatic split plan) on memory-bound decode shapes; run once per build
(variants.py), the builds alternated. Every output is checked against fp32 on 4 sequences after o and lse are poisoned
with NaN; then the graphs are replayed interleaved after the L2 flush (median of 30).
Prints CSV: tag,B,Hq,Hkv,S,median_us,tb_s,rel_err,nan   (tb_s: K and V bytes / time)"""
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

TAG = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
# c3's suffixes (8/1 and 32/8, S 512), c1/c2-like plain decodes (32/32), the ncu shape of session 9 (B128 S2048)
SHAPES = [(512, 8, 1, 512), (1024, 8, 1, 512), (2048, 8, 1, 512), (4096, 8, 1, 512), (1024, 32, 8, 512),
          (4096, 32, 8, 512), (32, 32, 32, 512), (128, 32, 32, 512), (128, 32, 32, 2048), (16, 32, 32, 4096)]
torch.manual_seed(0)
runs, info, keep = {}, {}, []
for B, Hq, Hkv, S in SHAPES:
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    k, v = (torch.randn(B, S, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    o = torch.full_like(q, float("nan"))
    lse = torch.full(q.shape[:3], float("nan"), device=dev)
    launch = lambda q=q, k=k, v=v, o=o, lse=lse: tkh.decode_attention(q, k, v, out=(o, lse))
    launch()
    torch.cuda.synchronize()
    rows = torch.linspace(0, B - 1, 4).long()
    R = Hq // Hkv
    s = torch.einsum("bhd,bphd->bhp", q[rows, 0].float(), k[rows].float().repeat_interleave(R, 2)) / D ** 0.5
    ref = torch.einsum("bhp,bphd->bhd", s.softmax(-1), v[rows].float().repeat_interleave(R, 2))
    info[(B, Hq, Hkv, S)] = (((o[rows, 0].float() - ref).norm() / ref.norm()).item(),
                             int(o.isnan().sum()) + int(lse.isnan().sum()))
    runs[(B, Hq, Hkv, S)] = capture_graph(launch)[0].replay
    keep.append((launch, q, k, v, o, lse))   # the graphs' tensors stay alive
for (B, Hq, Hkv, S), xs in time_interleaved(runs, 30, L2Flusher(device=dev)).items():
    us = statistics.median(xs)
    err, nan = info[(B, Hq, Hkv, S)]
    print(f"{TAG},{B},{Hq},{Hkv},{S},{us:.2f},{2 * B * S * Hkv * D * 2 / us / 1e6:.3f},{err:.2e},{nan}", flush=True)
