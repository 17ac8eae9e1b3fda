"""One build's tk_hydragen on the shapes that session 20's two kernel changes touch; run once per build, alternated.

- kernel rows: prefix_attention alone (the automatic plan) on c3's suffix-0 shapes (overlapped loop; the O rescale
  now runs under the Q K^T) and one serial-loop control.
- step rows: hydragen_attention_nopad as the benchmark calls it (seq_len = S for every sequence) with short suffixes,
  where the decode's fused merge now prefetches the prefix slots into L2, and a long-suffix control.
Every output is checked against fp32 on 4 sequences after o is poisoned with NaN; then all graphs are replayed
interleaved after the L2 flush (median of 30). Prints CSV: tag,kind,B,Hq,Hkv,P,S,median_us,rel_err,nan
"""
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

TAG = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
KERNEL = [(1024, 32, 8, 2048), (2048, 8, 1, 4096), (2048, 32, 8, 4096), (4096, 8, 1, 8192), (1024, 32, 8, 16384),
          (512, 32, 8, 1024)]
STEP = [(1024, 8, 1, 2048, 64), (512, 8, 1, 1024, 64), (1024, 32, 8, 2048, 64), (2048, 32, 8, 4096, 64),
        (128, 32, 32, 1024, 64), (64, 32, 32, 4096, 64), (16, 32, 32, 2048, 64), (64, 32, 32, 2048, 128),
        (2048, 8, 1, 4096, 256), (32, 32, 32, 4096, 512)]


def ref_rows(q, pk, pv, k, v, rows):
    """fp32 attention of q[rows] over the prefix keys then the sequence's own S keys."""
    R = q.shape[2] // pk.shape[2]
    out = []
    for b in rows.tolist():
        kk = torch.cat([pk[0], k[b]]).float().repeat_interleave(R, 1)   # (P+S, Hq, D)
        vv = torch.cat([pv[0], v[b]]).float().repeat_interleave(R, 1)
        s = torch.einsum("hd,phd->hp", q[b, 0].float(), kk) / D ** 0.5
        out.append(torch.einsum("hp,phd->hd", s.softmax(-1), vv))
    return torch.stack(out)


torch.manual_seed(0)
cases, keep = {}, []
for B, Hq, Hkv, P, S in [(*s, 0) for s in KERNEL] + STEP:
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    pk, pv = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    k, v = (torch.randn(B, S, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    sl = torch.full((B,), S, dtype=torch.int32, device=dev)
    o = torch.full_like(q, float("nan"))
    if S == 0:
        lse = torch.full(q.shape[:3], float("nan"), device=dev)
        launch = lambda q=q, pk=pk, pv=pv, o=o, lse=lse: tkh.prefix_attention(q, pk, pv, out=(o, lse))
    else:
        launch = lambda q=q, pk=pk, pv=pv, k=k, v=v, sl=sl, o=o: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl,
                                                                                             out=o)
    launch()
    torch.cuda.synchronize()
    rows = torch.linspace(0, B - 1, 4).long()
    ref = ref_rows(q, pk, pv, k, v, rows)
    err = ((o[rows, 0].float() - ref).norm() / ref.norm()).item()
    nan = int(o.isnan().sum())
    key = ("kernel" if S == 0 else "step", B, Hq, Hkv, P, S)
    cases[key] = (capture_graph(launch)[0].replay, err, nan)
    keep.append((launch, q, pk, pv, k, v, sl, o))   # every graph's tensors stay alive (a capture empties the cache)

times = time_interleaved({key: c[0] for key, c in cases.items()}, 30, L2Flusher(device=dev))
for key, xs in times.items():
    kind, B, Hq, Hkv, P, S = key
    _, err, nan = cases[key]
    print(f"{TAG},{kind},{B},{Hq},{Hkv},{P},{S},{statistics.median(xs):.2f},{err:.2e},{nan}", flush=True)
