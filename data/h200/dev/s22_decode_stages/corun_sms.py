"""Prepared for the next call (not run in session 22): the c3 suffix step with the prefix co-running on n SMs, for
one build (variants.py: head or st3), n swept. Question: does a deeper decode ring (st3: two tiles in flight a block)
carry the stream on fewer SMs, so that the prefix can take more of them? Graph replay after the L2 flush, the n
interleaved (median of 15); every output checked against fp32 on 16 sequences after NaN poisoning.
Prints CSV: tag,Hq,Hkv,B,P,S,n_p,auto_n_p,median_us,rel_err"""
import math
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

TAG = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
n_sm = tkh._num_sms(0)
SHAPES = [(8, 1, 1024, 2048, 512), (8, 1, 2048, 4096, 512), (8, 1, 4096, 8192, 512), (32, 8, 1024, 2048, 512),
          (32, 8, 2048, 4096, 512)]
N_P = [0, 33, 44, 55, 66, 77, 88, 99]   # 0: serial (overlap=False)
flusher = L2Flusher(device=dev)
for Hq, Hkv, B, P, S in SHAPES:
    torch.manual_seed(B + P + Hq)
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    pk, pv = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    k, v = (torch.randn(B, S, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    auto_n_p = tkh._corun_sms(q, k, [(pk, pv)], n_sm)
    n = 16   # the fp32 reference on sequences 0, B/16, ...
    rows = torch.arange(0, B, B // n, device=dev)
    R = Hq // Hkv
    keys = torch.cat([pk.expand(n, -1, -1, -1), k[rows]], 1).float().repeat_interleave(R, 2)
    vals = torch.cat([pv.expand(n, -1, -1, -1), v[rows]], 1).float().repeat_interleave(R, 2)
    ref = torch.einsum("bnht,bthd->bnhd", torch.softmax(torch.einsum("bnhd,bthd->bnht", q[rows].float(), keys)
                                                        / math.sqrt(D), -1), vals)
    runners, errs, keep = {}, {}, []
    for n_p in N_P:
        o = torch.full_like(q, float("nan"))
        kw = {"overlap": False} if n_p == 0 else {"prefix_sms": n_p}
        fn = lambda o=o, kw=kw: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], out=o, **kw)
        fn()
        torch.cuda.synchronize()
        errs[n_p] = ((o[rows].float() - ref).norm() / ref.norm()).item() + (math.inf if o.isnan().any() else 0)
        runners[n_p] = capture_graph(fn)[0].replay
        keep.append((fn, o))
    for n_p, xs in time_interleaved(runners, 15, flusher).items():
        print(f"{TAG},{Hq},{Hkv},{B},{P},{S},{n_p},{auto_n_p},{statistics.median(xs):.1f},{errs[n_p]:.2e}", flush=True)
    del runners, keep
    torch.cuda.empty_cache()
