"""One build's prefix kernel on c3's suffix-0 shapes: correctness vs fp32 on 8 sequences (o poisoned first), then
graph-replay time after the L2 flush (median of 30). KV env: the build's key tile (the planner's PREFIX_TILE_KEYS)."""
import os, sys, statistics
import torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
tkh.PREFIX_TILE_KEYS = int(os.environ.get("KV", "128"))
tag = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
fl = L2Flusher(device=dev)
SHAPES = [(1024, 32, 8, 2048), (512, 32, 8, 1024), (2048, 8, 1, 4096), (2048, 32, 8, 4096), (4096, 32, 8, 8192),
          (1024, 32, 8, 16384), (1024, 32, 8, 2000), (333, 32, 8, 1500), (256, 32, 32, 32768), (128, 32, 32, 4096)]
torch.manual_seed(0)
for B, Hq, Hkv, P in SHAPES:
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    k = torch.randn(1, P, Hkv, D, device=dev, dtype=dt)
    v = torch.randn(1, P, Hkv, D, device=dev, dtype=dt)
    res = {}
    for cw in (None,):
        o = torch.full_like(q, float("nan")); lse = torch.full(q.shape[:3], float("nan"), device=dev)
        tkh.prefix_attention(q, k, v, consumer_warpgroups=cw, out=(o, lse))
        rows = torch.linspace(0, B - 1, 8).long()
        qs = q[rows, 0].float()                                    # (8, Hq, D)
        kk = k[0].float().repeat_interleave(Hq // Hkv, dim=1)      # (P, Hq, D)
        vv = v[0].float().repeat_interleave(Hq // Hkv, dim=1)
        s = torch.einsum("bhd,phd->bhp", qs, kk) / D ** 0.5
        ref = torch.einsum("bhp,phd->bhd", s.softmax(-1), vv)
        err = ((o[rows, 0].float() - ref).norm() / ref.norm()).item()
        nan = int(torch.isnan(o).sum().item())
        cw_used, s_used = tkh._plan_prefix(q, k, None, cw)
        g, _ = capture_graph(lambda: tkh.prefix_attention(q, k, v, consumer_warpgroups=cw, out=(o, lse)))
        res[(cw, cw_used, s_used, err, nan)] = g.replay
    t = time_interleaved({key: f for key, f in res.items()}, 30, fl)
    for (cw, cwu, su, err, nan), xs in t.items():
        us = statistics.median(xs)
        tf = 4 * B * Hq * P * D / us / 1e6
        print(f"{tag},{B},{Hq},{Hkv},{P},{cw},{cwu},{su},{us:.2f},{tf:.0f},{err:.2e},{nan}", flush=True)
    del q, k, v, res
    torch.cuda.empty_cache()
