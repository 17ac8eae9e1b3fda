"""tk_tree on one c8 tree, three eager calls (ncu profiles the third call's wgmma and decode kernels). Env:
TREE=wide4096 or binary10: the bf16 case of config/sweeps/c8_trees.yaml (the harness's loader), page size 16 (as the
harness's TreeAttn)."""
import os

import torch

import tkprefix as tk
from tkprefix.bench.cases import load_sweep

name = os.environ.get("TREE", "wide4096")
case = next(c for c in load_sweep("config/sweeps/c8_trees.yaml").cases
            if c.tree.name == name and c.dtype == "bfloat16")
t, dt = case.tree, torch.bfloat16
node_ks, node_vs = ([torch.randn(n, case.kv_heads, case.head_dim, device="cuda", dtype=dt) for n in t.lengths]
                    for _ in range(2))
tree = tk.PagedTree.from_nodes(list(t.parents), node_ks, node_vs, page_size=16)
q = torch.randn(t.n_leaves, case.q_heads, case.head_dim, device="cuda", dtype=dt)   # leaf b in preorder
for _ in range(3):
    o = tk.tree_attention(q, tree, backend="tk")
torch.cuda.synchronize()
print(f"{t.name}: {len(t.parents)} nodes, {t.n_leaves} leaves, {sum(t.lengths)} tokens, "
      f"o finite: {bool(o.isfinite().all())}")
