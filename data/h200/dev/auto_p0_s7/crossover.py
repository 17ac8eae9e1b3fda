"""Where nothing is shared, which plain decode is faster: TK's decode kernel or PyTorch SDPA (FlashAttention)?

One query per sequence over its whole cache (B, S, Hkv, D), bf16 and fp16; CUDA-graph replay after an L2 flush, median
of 25 interleaved samples (tkprefix.bench.timing). Prints CSV: heads, batch, keys, dtype, D, tk_us, sdpa_us, sdpa/tk
ratio < 1 where SDPA is faster. Session 7, GPU call 1; sets PLAIN_DECODE_SDPA_MIN_KEYS (src/tkprefix/hydragen.py).
"""
import statistics
import sys

import torch

import tkprefix
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
from tkprefix.hydragen import sdpa_decode

flusher = L2Flusher()
print("q_heads,kv_heads,batch,keys,dtype,head_dim,tk_us,sdpa_us,sdpa_over_tk,rel_diff")
for dtype in (torch.bfloat16, torch.float16):
    for hq, hkv, d in ((32, 32, 128), (32, 8, 128), (8, 1, 128), (32, 32, 64)):
        if dtype == torch.float16 and (hkv, d) != (32, 128):
            continue
        for B in (1, 4, 16, 32, 64, 128, 256):
            for S in (32, 64, 128, 256, 512, 1024, 2048, 4096):
                if 2 * B * S * hkv * d * 2 > 8e9:
                    continue
                g = torch.Generator(device="cuda").manual_seed(B * 100003 + S)
                q = torch.randn(B, 1, hq, d, device="cuda", dtype=dtype, generator=g)
                k = torch.randn(B, S, hkv, d, device="cuda", dtype=dtype, generator=g)
                v = torch.randn(B, S, hkv, d, device="cuda", dtype=dtype, generator=g)
                fns = {"tk": lambda: tkprefix.hydragen_attention_nopad(q, k, v, [], [], backend="tk"),
                       "sdpa": lambda: sdpa_decode(q, k, v)}
                outs, graphs = {}, {}
                for name, fn in fns.items():
                    graphs[name], outs[name] = capture_graph(fn)
                t = time_interleaved({n: gr.replay for n, gr in graphs.items()}, 25, flusher)
                tk_us, sdpa_us = statistics.median(t["tk"]), statistics.median(t["sdpa"])
                diff = ((outs["tk"].double() - outs["sdpa"].double()).norm() / outs["sdpa"].double().norm()).item()
                print(f"{hq},{hkv},{B},{S},{str(dtype)[6:]},{d},{tk_us:.2f},{sdpa_us:.2f},{sdpa_us / tk_us:.3f},"
                      f"{diff:.2e}", flush=True)
                del graphs, outs
print("done", file=sys.stderr)
