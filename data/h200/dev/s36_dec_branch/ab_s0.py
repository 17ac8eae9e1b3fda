"""Session 36: the c3 prefix-only steps (suffix 0) and two fused steps, one variant's build per process
(TAG names it). CUDA-graph replay after an L2 flush, the shapes interleaved; prints CSV rows
tag,B,Hq,Hkv,P,S,median_us.
    TAG=rec python3 ab_s0.py >> ab.csv
"""
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

SHAPES = [(b, h, kv, p, 0) for (h, kv) in ((8, 1), (32, 8))
          for (b, p) in ((512, 1024), (1024, 2048), (2048, 4096), (4096, 8192))]
SHAPES += [(2048, 8, 1, 4096, 64), (2048, 32, 8, 4096, 64)]   # fused picks: the DEC kernel, unchanged; each
# also with prefix_decode=False (S printed negative): does the rule's pick hold on this machine? (32/8 measured
# 0.959x in the A/B, yet 465 us in data/h100 against 450 at 45a102e on another H100)

torch.manual_seed(0)
r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
keep, runners = [], {}
for B, Hq, Hkv, P, S in SHAPES:
    q, k, v, sk, sv = r(B, 1, Hq, 128), r(B, S, Hkv, 128), r(B, S, Hkv, 128), r(1, P, Hkv, 128), r(1, P, Hkv, 128)
    for fused in ((None, False) if S else (None,)):
        g, out = capture_graph(lambda: tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], prefix_decode=fused))
        keep.append((q, k, v, sk, sv, g, out))
        runners[B, Hq, Hkv, P, S if fused is None else -S] = g.replay
t = time_interleaved(runners, 40, L2Flusher())
for key, x in t.items():
    print(os.environ.get("TAG", "?"), *key, round(statistics.median(x), 2), sep=",", flush=True)
