"""Session 9, GPU call 2. (1) The prefix kernel's key-interleaved schedule (<= 64 stacked rows: both consumer
warpgroups take the rows and alternate key tiles) against the plain one, per split count and with the automatic plan;
(2) decode split counts at 1-64 blocks (the session-8 sweep started at 64). CUDA-graph replay after an L2 flush, median
of 25 interleaved samples. Writes prefix_ab.csv and decode_small.csv into the folder given."""
import math
import statistics
import sys
from pathlib import Path

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

out = Path(sys.argv[1])
flusher = L2Flusher()


def timed(fns):
    graphs, outs = {}, {}
    for name, fn in fns.items():
        graphs[name], outs[name] = capture_graph(fn)
    t = time_interleaved({n: g.replay for n, g in graphs.items()}, 25, flusher)
    return {n: statistics.median(v) for n, v in t.items()}, outs


rows = ["q_heads,kv_heads,batch,prefix,rows,variant,splits,us,rel_diff"]
shapes = [(h, h, B, 16384) for h in (16, 32) for B in (16, 32, 64)]                  # c4
shapes += [(32, 32, B, P) for B in (16, 32, 64) for P in (1024, 2048, 4096)]         # c1
shapes += [(32, 32, 16, P) for P in (8192, 32768)] + [(32, 32, 10, 4000)]            # c2 B16, c8 long10
shapes += [(32, 8, 16, 4096), (8, 1, 8, 8192), (32, 32, 128, 16384)]
for hq, hkv, B, P in (shapes if sys.argv[2:] != ['decode'] else []):
    g = torch.Generator(device="cuda").manual_seed(B * 7 + P)
    q = torch.randn(B, 1, hq, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, P, hkv, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(1, P, hkv, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    n_tiles = math.ceil(P / 128)
    fits = B * hq // hkv <= 64
    fns = {("old_auto", 0): lambda: tkh.prefix_attention(q, k, v, key_interleave=False)[0],
           ("new_auto", 0): lambda: tkh.prefix_attention(q, k, v)[0]}
    splits = sorted({math.ceil(n_tiles / math.ceil(n_tiles / s)) for s in (1, 2, 3, 4, 6, 8, 12, 16) if s <= n_tiles})
    for s in splits:
        fns[("cw2_plain", s)] = lambda s=s: tkh.prefix_attention(q, k, v, n_splits=s, consumer_warpgroups=2,
                                                                 key_interleave=False)[0]
        if fits:
            fns[("cw2_interleave", s)] = lambda s=s: tkh.prefix_attention(q, k, v, n_splits=s, consumer_warpgroups=2,
                                                                          key_interleave=True)[0]
    med, outs = timed(fns)
    ref = outs[("old_auto", 0)].double()
    for (name, s), us in med.items():
        d = ((outs[(name, s)].double() - ref).norm() / ref.norm()).item()
        rows.append(f"{hq},{hkv},{B},{P},{B * hq // hkv},{name},{s},{us:.2f},{d:.2e}")
    best = {n: min(us for (m, s), us in med.items() if m == n) for n in {m for m, _ in med}}
    print(hq, hkv, B, P, {n: round(u, 1) for n, u in sorted(best.items())}, flush=True)
    del outs
if sys.argv[2:] != ['decode']:
    (out / "prefix_ab.csv").write_text("\n".join(rows) + "\n")

rows = ["q_heads,kv_heads,head_dim,batch,blocks,keys,splits,auto_splits,us"]
for hq, hkv, D in ((32, 32, 128), (32, 8, 128), (8, 1, 128), (32, 32, 64)):
    for blocks in (1, 4, 8, 16, 32, 64):
        if blocks % hkv:
            continue
        B = blocks // hkv
        for S in (256, 512, 1024, 2048, 4096, 8192):
            g = torch.Generator(device="cuda").manual_seed(B * 13 + S)
            q = torch.randn(B, 1, hq, D, device="cuda", dtype=torch.bfloat16, generator=g)
            k = torch.randn(B, S, hkv, D, device="cuda", dtype=torch.bfloat16, generator=g)
            v = torch.randn(B, S, hkv, D, device="cuda", dtype=torch.bfloat16, generator=g)
            n_tiles = math.ceil(S / 64)
            auto = tkh._plan_decode(q, k, None)[0]
            splits = sorted({math.ceil(n_tiles / math.ceil(n_tiles / s)) for s in
                             (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128) if s <= n_tiles} | {auto})
            med, _ = timed({s: (lambda s=s: tkh.decode_attention(q, k, v, n_splits=s)[0]) for s in splits})
            for s, us in med.items():
                rows.append(f"{hq},{hkv},{D},{B},{blocks},{S},{s},{auto},{us:.2f}")
            b = min(med, key=med.get)
            print(hq, hkv, D, blocks, S, "best", b, round(med[b], 1), "auto", auto, round(med[auto], 1), flush=True)
(out / "decode_small.csv").write_text("\n".join(rows) + "\n")
print("done", file=sys.stderr)
