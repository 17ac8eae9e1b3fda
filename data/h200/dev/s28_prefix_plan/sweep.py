"""The prefix kernel's plan on the prefix-only (suffix 0) shapes of c3 and c4: prefix_attention at every
(consumer_warpgroups, n_splits) against the plan's own pick, as the harness times it (CUDA graph replay after the
L2 flush, interleaved within a shape, median of 15). Each configuration's output is checked against fp32 on 4
sequences after NaN poisoning. Prints CSV: B,Hq,Hkv,P,cw,splits,planned,median_us,rel_err,nan"""
import math
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
from tkprefix.reference import attention_with_lse

dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
SHAPES = [(512, 8, 1, 1024), (1024, 8, 1, 2048), (2048, 8, 1, 4096), (4096, 8, 1, 8192), (512, 32, 8, 1024),
          (1024, 32, 8, 2048), (2048, 32, 8, 4096), (16, 16, 16, 16384), (16, 32, 32, 16384), (128, 32, 32, 16384)]
SPLITS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
flusher = L2Flusher(device=dev)
torch.manual_seed(0)
print("B,Hq,Hkv,P,cw,splits,planned,median_us,rel_err,nan", flush=True)
for B, Hq, Hkv, P in SHAPES:
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    pk, pv = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    rows = torch.linspace(0, B - 1, 4).long()
    ref = attention_with_lse(q[rows].float(), pk.expand(4, -1, -1, -1).float(), pv.expand(4, -1, -1, -1).float())[0]
    planned = tkh._plan_prefix(q, pk, None)
    n_tiles = math.ceil(P / tkh.PREFIX_TILE_KEYS)
    configs = {(cw, s) for cw in (2, 3) for s in SPLITS
               if s <= n_tiles and math.ceil(n_tiles / math.ceil(n_tiles / s)) == s} | {planned}
    runs, info, keep = {}, {}, []
    for cw, s in sorted(configs):
        o = torch.full_like(q, float("nan"))
        lse = torch.full(q.shape[:3], float("nan"), device=dev)
        launch = lambda o=o, lse=lse, cw=cw, s=s: tkh.prefix_attention(q, pk, pv, n_splits=s, consumer_warpgroups=cw,
                                                                        out=(o, lse))
        launch()
        torch.cuda.synchronize()
        info[(cw, s)] = (((o[rows].float() - ref).norm() / ref.norm()).item(), int(o.isnan().sum()))
        runs[(cw, s)] = capture_graph(launch)[0].replay
        keep.append((launch, o, lse))
    for (cw, s), xs in time_interleaved(runs, 15, flusher).items():
        err, nan = info[(cw, s)]
        print(f"{B},{Hq},{Hkv},{P},{cw},{s},{int((cw, s) == planned)},{statistics.median(xs):.2f},{err:.2e},{nan}",
              flush=True)
    del runs, keep
