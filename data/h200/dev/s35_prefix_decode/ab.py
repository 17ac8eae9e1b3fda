"""Session 35: the prefix kernel with the suffix decode inside (prefix_decode=True) against the current step.

Per shape, CUDA-graph replay, L2 flushed, the variants interleaved (tkprefix.bench.timing): `step` (the default
dispatch of tk_hydragen.hydragen_attention_nopad), `fused` (prefix_decode=True: one kernel + the merge), `prefix`
(the prefix kernel alone, its planned launch) and `decode` (the decode kernel alone), so the overlap reached shows as
fused against prefix + decode. Also the relative difference of fused against step (both against float64 in the GPU
tests). Prints and writes CSV rows: B,Hq,Hkv,P,S,step_us,fused_us,prefix_us,decode_us,fused_over_step,rel_diff.
    python3 ab.py OUT.csv [REPS]
"""
import csv
import statistics
import sys

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

SHAPES = [  # (B, Hq, Hkv, P, S): every c3 case with a suffix (the rule for the default would be fitted to these), and
    # three of c1's (one row a kv-head, a memory-bound prefix: expected to lose)
    *[(b, h, kv, p, s) for s in (64, 256, 512) for (h, kv) in ((8, 1), (32, 8))
      for (b, p) in ((512, 1024), (1024, 2048), (2048, 4096), (4096, 8192))],
    (16, 32, 32, 1024, 64), (64, 32, 32, 2048, 64), (128, 32, 32, 4096, 512),
]


def main(path, reps=30):
    flusher = L2Flusher()
    rows = []
    for B, Hq, Hkv, P, S in SHAPES:
        torch.manual_seed(0)
        r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
        q, k, v = r(B, 1, Hq, 128), r(B, S, Hkv, 128), r(B, S, Hkv, 128)
        sk, sv = r(1, P, Hkv, 128), r(1, P, Hkv, 128)
        fns = {
            "step": lambda: tkh.hydragen_attention_nopad(q, k, v, [sk], [sv]),
            "fused": lambda: tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], prefix_decode=True),
            "prefix": lambda: tkh.prefix_attention(q, sk, sv),
            "decode": lambda: tkh.decode_attention(q, k, v),
        }
        graphs = {name: capture_graph(fn) for name, fn in fns.items()}
        for g, _ in graphs.values():   # a captured graph's output holds nothing until its first replay
            g.replay()
        torch.cuda.synchronize()
        rel = float((graphs["fused"][1].float() - graphs["step"][1].float()).norm() / graphs["step"][1].float().norm())
        t = time_interleaved({name: g.replay for name, (g, _) in graphs.items()}, reps, flusher)
        med = {name: statistics.median(x) for name, x in t.items()}
        row = [B, Hq, Hkv, P, S] + [round(med[n], 2) for n in fns] + [round(med["fused"] / med["step"], 4), f"{rel:.2e}"]
        print(*row, flush=True)
        rows.append(row)
        del graphs
        torch.cuda.empty_cache()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["B", "Hq", "Hkv", "P", "S", "step_us", "fused_us", "prefix_us", "decode_us", "fused_over_step",
                    "rel_diff"])
        w.writerows(rows)
    ratios = [row[9] for row in rows]
    print("geomean fused/step:", round(statistics.geometric_mean(ratios), 4))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30)
