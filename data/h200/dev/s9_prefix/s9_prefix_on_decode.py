"""(Prepared in session 8, not yet run.) A shared prefix read by few stacked rows (<= 64 per kv-head: c4, c1/c2 at
batch 16) is memory-bound: does the decode kernel (mma.sync, cp.async, 3 blocks/SM) stream it faster than the prefix
kernel (TMA + wgmma, 128/192-row blocks)? The prefix as one "sequence" per prefix row: q (B, Nq, Hq, D) viewed as
(Bp, B/Bp*Nq, Hq, D), every row seeing all P keys (seq_len = P). CUDA-graph replay after an L2 flush, median of 25
interleaved samples. Prints CSV: prefix kernel time, decode kernel time per split count, their max rel diff."""
import math
import statistics
import sys

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

flusher = L2Flusher()
print("q_heads,kv_heads,batch,prefix,prefix_kernel_us,best_decode_us,best_splits,decode_us_by_splits,max_diff")
shapes = [(hq, hkv, B, 16384) for hq, hkv in ((16, 16), (32, 32)) for B in (16, 32, 64, 128)]
shapes += [(32, 32, 16, P) for P in (1024, 2048, 4096, 8192, 32768)] + [(32, 8, 16, 4096), (8, 1, 8, 8192)]
for hq, hkv, B, P in shapes:
    g = torch.Generator(device="cuda").manual_seed(B * 31 + P)
    q = torch.randn(B, 1, hq, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    pk = torch.randn(1, P, hkv, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    pv = torch.randn(1, P, hkv, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    full = torch.full((1,), P, device="cuda", dtype=torch.int32)
    qv = q.view(1, B, hq, 128)
    n_tiles = math.ceil(P / 64)
    splits = sorted({math.ceil(n_tiles / math.ceil(n_tiles / s)) for s in (1, 2, 4, 6, 8, 12, 16, 24, 32, 48)
                     if s <= n_tiles})
    fns = {"prefix": lambda: tkh.prefix_attention(q, pk, pv)[0]}
    for s in splits:
        fns[s] = lambda s=s: tkh.decode_attention(qv, pk, pv, full, n_splits=s)[0]
    graphs, outs = {}, {}
    for name, fn in fns.items():
        graphs[name], outs[name] = capture_graph(fn)
    t = time_interleaved({n: gr.replay for n, gr in graphs.items()}, 25, flusher)
    med = {n: statistics.median(v) for n, v in t.items()}
    ref = outs["prefix"].double().reshape(B, hq, 128)
    diff = max(((outs[s].double().reshape(B, hq, 128) - ref).norm() / ref.norm()).item() for s in splits)
    best = min(splits, key=lambda s: med[s])
    by = " ".join(f"{s}:{med[s]:.1f}" for s in splits)
    print(f"{hq},{hkv},{B},{P},{med['prefix']:.2f},{med[best]:.2f},{best},{by},{diff:.2e}", flush=True)
    del graphs, outs
print("done", file=sys.stderr)
