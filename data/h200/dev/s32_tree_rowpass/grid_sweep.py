"""tk_tree on c8 trees (bf16, page size 16, as the harness) with the wgmma kernel's grid capped (max_blocks) and with
the two kernels serial (overlap=False): does the decode kernel, which runs beside the wgmma kernel's persistent blocks
on a second stream, get too little of each SM? Each setting a CUDA graph, replayed after the L2 flush, interleaved,
median of 15 ("default": max_blocks 0, the plan's grid). Run once per build (TKPREFIX_KERNELS_DIR); argv[1] names it;
argv[2] = "nc1": instead, one consumer warpgroup a block (two blocks an SM) at several grids. Prints CSV rows:
build,tree,setting,max_blocks,overlap,consumers,median_us,rel_err (rel_err: the first 8 leaves against float64)."""
import statistics
import sys

import torch

import tkprefix as tk
from tkprefix import tk_tree
from tkprefix.bench.cases import load_sweep
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
from tkprefix.reference import attention_with_lse

build = sys.argv[1]
flusher = L2Flusher(device="cuda")
cases = {c.tree.name: c for c in load_sweep("config/sweeps/c8_trees.yaml").cases if c.dtype == "bfloat16"}
SETTINGS = [("default", 0, True, None), ("serial", 0, False, None)] + [(f"cap{b}", b, True, None)
                                                                        for b in (112, 96, 80, 64)]
if sys.argv[2:] == ["nc1"]:
    SETTINGS = [("default", 0, True, None), ("nc1_serial", 0, False, 1)] + [(f"nc1_cap{b}", b, True, 1)
                                                                           for b in (264, 224, 192, 160, 128)]
if build == "head":
    print("build,tree,setting,max_blocks,overlap,consumers,median_us,rel_err", flush=True)
torch.manual_seed(0)
for name in ("wide4096", "wide1024", "binary10", "pruned6", "sample64"):
    case = cases[name]
    t, dt = case.tree, torch.bfloat16
    node_ks, node_vs = ([torch.randn(n, case.kv_heads, case.head_dim, device="cuda", dtype=dt) for n in t.lengths]
                        for _ in range(2))
    tree = tk.PagedTree.from_nodes(list(t.parents), node_ks, node_vs, page_size=16)
    q = torch.randn(t.n_leaves, case.q_heads, case.head_dim, device="cuda", dtype=dt)
    plan = tree.plan(case.q_heads)
    errs, graphs = {}, {}
    for label, mb, ov, nc in SETTINGS:
        run = lambda mb=mb, ov=ov, nc=nc: tk_tree.tree_attention(q, tree, plan, max_blocks=mb, overlap=ov,
                                                                 consumers=nc)
        o = run()
        torch.cuda.synchronize()
        err = 0.0
        for b in range(min(8, t.n_leaves)):
            path = t.path(b)
            k = torch.cat([node_ks[i] for i in path]).double()[None]
            v = torch.cat([node_vs[i] for i in path]).double()[None]
            ref = attention_with_lse(q[b:b + 1, None].double(), k, v)[0][0, 0]
            err = max(err, ((o[b].double() - ref).norm() / ref.norm()).item())
        errs[label] = err
        graphs[label] = capture_graph(run)[0]
    times = time_interleaved({k: g.replay for k, g in graphs.items()}, 15, flusher)
    for label, mb, ov, nc in SETTINGS:
        print(f"{build},{name},{label},{mb},{int(ov)},{nc or 0},{statistics.median(times[label]):.2f},"
              f"{errs[label]:.2e}", flush=True)
