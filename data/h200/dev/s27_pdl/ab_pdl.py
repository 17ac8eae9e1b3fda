"""Programmatic dependent launch on and off (tk_hydragen.PDL) in one build and one process: the Hydragen step
(hydragen_attention_nopad as users call it: PDL acts where it runs serially on one stream) at c1 / c3 / c5-like
shapes, the split prefix alone (shapes the plan splits) and the split decode alone. Each launch is captured in a CUDA
graph with PDL set as named (the graph keeps the launch attributes); the graphs are replayed interleaved after the L2
flush (median of 20).
Outputs are checked against fp32 on 4 sequences after NaN poisoning.
Prints CSV: tag,pdl,kind,B,Hq,Hkv,P,S,median_us,rel_err,nan (tag: $TAG, the build's name in the call)"""
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
from tkprefix.reference import attention_with_lse

TAG = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
STEP = [  # (B, Hq, Hkv, P, S): c1 (32/32), c3 (S64, and S256 below the co-run's decode size), c5-like
    (16, 32, 32, 1024, 64), (16, 32, 32, 4096, 512), (64, 32, 32, 1024, 64), (128, 32, 32, 4096, 64),
    (128, 32, 32, 1024, 512), (512, 32, 8, 1024, 64), (1024, 32, 8, 2048, 64), (2048, 8, 1, 4096, 64),
    (512, 8, 1, 1024, 256), (32, 32, 8, 3072, 256)]
PREFIX = [(512, 8, 1, 1024, 0), (16, 32, 32, 4096, 0), (128, 32, 32, 1024, 0)]   # split prefixes + the merge
DECODE = [(4, 32, 8, 0, 8192), (16, 32, 32, 0, 4096)]                            # split decodes + the merge
torch.manual_seed(0)
runs, info, keep = {}, {}, []
for kind, shapes in (("step", STEP), ("prefix", PREFIX), ("decode", DECODE)):
    for B, Hq, Hkv, P, S in shapes:
        q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
        k, v = (torch.randn(B, S, Hkv, D, device=dev, dtype=dt) for _ in range(2))
        pk, pv = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
        rows = torch.linspace(0, B - 1, 4).long()
        keys = torch.cat([pk.expand(4, -1, -1, -1), k[rows]], 1)
        vals = torch.cat([pv.expand(4, -1, -1, -1), v[rows]], 1)
        ref = attention_with_lse(q[rows].float(), keys.float(), vals.float())[0][:, 0]
        for pdl in (False, True):
            tkh.PDL = pdl
            o = torch.full_like(q, float("nan"))
            lse = torch.full(q.shape[:3], float("nan"), device=dev)
            if kind == "step":
                launch = lambda q=q, k=k, v=v, pk=pk, pv=pv, o=o: tkh.hydragen_attention_nopad(
                    q, k, v, [pk], [pv], out=o)
            elif kind == "prefix":
                launch = lambda q=q, pk=pk, pv=pv, o=o, lse=lse: tkh.prefix_attention(q, pk, pv, out=(o, lse))
            else:
                launch = lambda q=q, k=k, v=v, o=o, lse=lse: tkh.decode_attention(q, k, v, out=(o, lse))
            launch()
            torch.cuda.synchronize()
            key = (int(pdl), kind, B, Hq, Hkv, P, S)
            info[key] = (((o[rows, 0].float() - ref).norm() / ref.norm()).item(), int(o.isnan().sum()))
            runs[key] = capture_graph(launch)[0].replay
            keep.append((launch, o, lse))   # the graphs' tensors stay alive
        keep.append((q, k, v, pk, pv))
tkh.PDL = True
for key, xs in time_interleaved(runs, 20, L2Flusher(device=dev)).items():
    err, nan = info[key]
    print(TAG + "," + ",".join(map(str, key)) + f",{statistics.median(xs):.2f},{err:.2e},{nan}", flush=True)
