"""Session 8: the decode kernel's time against its key-split count (tk_hydragen.hydragen_attention_nopad with no
prefix, decode_n_splits = s; s > 1 adds fp32 partials and the merge kernel), to set decode_splits' rule. CUDA-graph
replay after an L2 flush, median of 25 interleaved samples (tkprefix.bench.timing). Prints CSV."""
import math
import statistics
import sys

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

flusher = L2Flusher()
print("q_heads,kv_heads,batch,keys,splits,us,auto_splits")
shapes = [(32, 32, B) for B in (16, 32, 64, 128)] + [(32, 8, B) for B in (16, 32, 64, 128)] \
    + [(8, 1, B) for B in (64, 128, 256, 512)]
for hq, hkv, B in shapes:
    for S in (512, 2048):
        g = torch.Generator(device="cuda").manual_seed(B * 7 + S)
        q = torch.randn(B, 1, hq, 128, device="cuda", dtype=torch.bfloat16, generator=g)
        k = torch.randn(B, S, hkv, 128, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(B, S, hkv, 128, device="cuda", dtype=torch.bfloat16, generator=g)
        n_tiles = math.ceil(S / 64)
        cands = sorted({math.ceil(n_tiles / math.ceil(n_tiles / s)) for s in (1, 2, 3, 4, 6, 8, 16) if s <= n_tiles})
        auto = tkh._plan_decode(q, k, None)[0]
        graphs = {s: capture_graph(lambda s=s: tkh.hydragen_attention_nopad(q, k, v, [], [], decode_n_splits=s))[0]
                  for s in cands}
        t = time_interleaved({s: gr.replay for s, gr in graphs.items()}, 25, flusher)
        for s in cands:
            print(f"{hq},{hkv},{B},{S},{s},{statistics.median(t[s]):.2f},{auto}", flush=True)
        del graphs, q, k, v
print("done", file=sys.stderr)
