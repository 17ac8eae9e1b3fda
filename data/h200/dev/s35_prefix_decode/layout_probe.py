"""Why tk_auto ties sdpa_naive at c1 P0 S512 (0.99-1.00x in data/h100 and data/h200, the only cases behind): auto
runs the same SDPA call, but on the (B, S, Hkv, D) cache as a transposed view, while sdpa_naive reads the head-major
(B, Hkv, S, D) copy it makes before timing. Times, per c1 P0 S512 batch (32/32 heads, bf16; graph replay, L2
flushed, interleaved): SDPA on the head-major copy, SDPA on the view (tk_auto's call), and our decode kernel.
    python3 layout_probe.py OUT.csv
"""
import csv
import statistics
import sys

import torch
import torch.nn.functional as F

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

flusher = L2Flusher()
rows = []
for B in (16, 32, 64, 128):
    r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
    q, k, v = r(B, 1, 32, 128), r(B, 512, 32, 128), r(B, 512, 32, 128)
    kh, vh = k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()
    qf = q.reshape(B, 32, 1, 128)
    fns = {"sdpa_head_major": lambda: F.scaled_dot_product_attention(qf, kh, vh),
           "sdpa_view": lambda: F.scaled_dot_product_attention(qf, k.transpose(1, 2), v.transpose(1, 2)),
           "tk_decode": lambda: tkh.decode_attention(q, k, v)}
    graphs = {n: capture_graph(f) for n, f in fns.items()}
    t = time_interleaved({n: g.replay for n, (g, _) in graphs.items()}, 30, flusher)
    med = {n: round(statistics.median(x), 2) for n, x in t.items()}
    print(B, med, flush=True)
    rows.append([B] + [med[n] for n in fns])
    del graphs
with open(sys.argv[1], "w", newline="") as f:
    csv.writer(f).writerows([["B", *fns]] + rows)
