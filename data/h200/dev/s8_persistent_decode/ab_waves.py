"""Session 8 dev A/B of the persistent decode grid (TKP_DECODE_WAVES: 1 = one resident wave of blocks, 2, and 100000
= one block per item, the scheduling before the change) against PyTorch SDPA, plus whole steps with a shared prefix
(hydragen_attention_nopad; overlap picked automatically). CUDA-graph replay after an L2 flush, median of 25
interleaved samples (tkprefix.bench.timing). Prints CSV."""
import os
import statistics
import sys

import torch

import tkprefix
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
from tkprefix.hydragen import sdpa_decode

WAVES = ("1", "2", "100000")
flusher = L2Flusher()
print("kind,q_heads,kv_heads,batch,prefix,keys,head_dim," + ",".join(f"tk_w{w}_us" for w in WAVES) + ",sdpa_us,max_diff")
shapes = [("decode", hq, hkv, d, B, 0, S) for hq, hkv, d in ((32, 32, 128), (32, 8, 128), (8, 1, 128), (32, 32, 64))
          for B in (16, 128, 1024) for S in (64, 512) if 2 * B * S * hkv * d * 2 <= 8e9]
shapes += [("step", 32, 32, 128, B, P, S) for B, P, S in ((16, 1024, 512), (32, 2048, 512), (16, 1024, 64),
                                                          (128, 1024, 64))]
shapes += [("step", 32, 8, 128, B, P, S) for B, P, S in ((1024, 2048, 64), (512, 1024, 256))]
shapes += [("step", 8, 1, 128, B, P, S) for B, P, S in ((1024, 2048, 64), (512, 1024, 512))]
for kind, hq, hkv, d, B, P, S in shapes:
    dtype = torch.bfloat16
    g = torch.Generator(device="cuda").manual_seed(B * 100003 + S + P)
    q = torch.randn(B, 1, hq, d, device="cuda", dtype=dtype, generator=g)
    k = torch.randn(B, S, hkv, d, device="cuda", dtype=dtype, generator=g)
    v = torch.randn(B, S, hkv, d, device="cuda", dtype=dtype, generator=g)
    pk = torch.randn(1, P, hkv, d, device="cuda", dtype=dtype, generator=g)
    pv = torch.randn(1, P, hkv, d, device="cuda", dtype=dtype, generator=g)
    levels = ([pk], [pv]) if P else ([], [])
    fns = {}
    for w in WAVES:
        fns[f"w{w}"] = (w, lambda: tkprefix.hydragen_attention_nopad(q, k, v, *levels, backend="tk"))
    if kind == "decode":
        fns["sdpa"] = (None, lambda: sdpa_decode(q, k, v))
    graphs, outs = {}, {}
    for name, (w, fn) in fns.items():
        if w is not None:
            os.environ["TKP_DECODE_WAVES"] = w
        graphs[name], outs[name] = capture_graph(fn)
    os.environ.pop("TKP_DECODE_WAVES", None)
    t = time_interleaved({n: gr.replay for n, gr in graphs.items()}, 25, flusher)
    ref = outs["w100000"].double()
    diff = max(((outs[n].double() - ref).norm() / ref.norm()).item() for n in outs)
    tk = ",".join(f"{statistics.median(t['w' + w]):.2f}" for w in WAVES)
    sd = f"{statistics.median(t['sdpa']):.2f}" if "sdpa" in t else ""
    print(f"{kind},{hq},{hkv},{B},{P},{S},{d},{tk},{sd},{diff:.2e}", flush=True)
    del graphs, outs
print("done", file=sys.stderr)
