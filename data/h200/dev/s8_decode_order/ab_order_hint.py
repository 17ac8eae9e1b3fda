"""Session 8 dev A/B of the decode kernel's block order (TKP_DECODE_ORDER 0: blocks of one sequence's kv-heads are
neighbours, as before; 1: blocks of one kv-head over the batch are neighbours, FlashAttention's grid order) and L2
prefetch hint (TKP_DECODE_HINT 1: .L2::256B, as before; 0: none), against PyTorch SDPA, plus whole steps with a
shared prefix. CUDA-graph replay after an L2 flush, median of 25 interleaved samples. Prints CSV."""
import os
import statistics
import sys

import torch

import tkprefix
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
from tkprefix.hydragen import sdpa_decode

VARIANTS = {"o0h1": ("0", "1"), "o1h1": ("1", "1"), "o0h0": ("0", "0"), "o1h0": ("1", "0")}
flusher = L2Flusher()
print("kind,q_heads,kv_heads,batch,prefix,keys,head_dim," + ",".join(f"tk_{v}_us" for v in VARIANTS) + ",sdpa_us,max_diff")
shapes = [("decode", hq, hkv, 128, B, 0, S) for hq, hkv in ((32, 32), (32, 8), (8, 1))
          for B in (16, 128, 1024) for S in (64, 512, 2048) if 2 * B * S * hkv * 128 * 2 <= 8.6e9]
shapes += [("step", 32, 32, 128, B, P, S) for B, P, S in ((16, 1024, 512), (32, 2048, 512), (64, 2048, 512),
                                                          (128, 1024, 64), (256, 8192, 2048))]
shapes += [("step", 32, 8, 128, B, P, S) for B, P, S in ((1024, 2048, 64), (1024, 2048, 512))]
shapes += [("step", 8, 1, 128, B, P, S) for B, P, S in ((1024, 2048, 64), (4096, 8192, 512))]
for kind, hq, hkv, d, B, P, S in shapes:
    dtype = torch.bfloat16
    g = torch.Generator(device="cuda").manual_seed(B * 100003 + S + P)
    q = torch.randn(B, 1, hq, d, device="cuda", dtype=dtype, generator=g)
    k = torch.randn(B, S, hkv, d, device="cuda", dtype=dtype, generator=g)
    v = torch.randn(B, S, hkv, d, device="cuda", dtype=dtype, generator=g)
    pk = torch.randn(1, P, hkv, d, device="cuda", dtype=dtype, generator=g)
    pv = torch.randn(1, P, hkv, d, device="cuda", dtype=dtype, generator=g)
    levels = ([pk], [pv]) if P else ([], [])
    graphs, outs = {}, {}
    for name, (order, hint) in VARIANTS.items():
        os.environ["TKP_DECODE_ORDER"], os.environ["TKP_DECODE_HINT"] = order, hint
        graphs[name], outs[name] = capture_graph(
            lambda: tkprefix.hydragen_attention_nopad(q, k, v, *levels, backend="tk"))
    os.environ.pop("TKP_DECODE_ORDER"), os.environ.pop("TKP_DECODE_HINT")
    if kind == "decode":
        graphs["sdpa"], outs["sdpa"] = capture_graph(lambda: sdpa_decode(q, k, v))
    t = time_interleaved({n: gr.replay for n, gr in graphs.items()}, 25, flusher)
    ref = outs["o0h1"].double()
    diff = max(((outs[n].double() - ref).norm() / ref.norm()).item() for n in outs)
    tk = ",".join(f"{statistics.median(t[v]):.2f}" for v in VARIANTS)
    sd = f"{statistics.median(t['sdpa']):.2f}" if "sdpa" in t else ""
    print(f"{kind},{hq},{hkv},{B},{P},{S},{d},{tk},{sd},{diff:.2e}", flush=True)
    del graphs, outs, q, k, v, pk, pv
    torch.cuda.empty_cache()
print("done", file=sys.stderr)
