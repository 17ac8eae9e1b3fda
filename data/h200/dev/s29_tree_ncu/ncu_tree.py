"""tk_tree on one c8 tree, three eager calls (ncu profiles the third call's wgmma and decode kernels). Env:
TREE=wide4096 or binary10 (config/sweeps/c8_trees.yaml's specs), bf16, 32/32 heads, D 128, page size 16 (as the
harness's TreeAttn)."""
import os

import torch
import yaml

import tkprefix as tk
from tkprefix.bench import trees

specs = {s["name"]: s for s in yaml.safe_load(open("config/sweeps/c8_trees.yaml"))["grid"]["trees"]}
t = trees.generate(specs[os.environ.get("TREE", "wide4096")])
H, D, dt = 32, 128, torch.bfloat16
node_ks, node_vs = ([torch.randn(n, H, D, device="cuda", dtype=dt) for n in t.lengths] for _ in range(2))
tree = tk.PagedTree.from_nodes(list(t.parents), node_ks, node_vs, page_size=16)
q = torch.randn(t.n_leaves, H, D, device="cuda", dtype=dt)   # leaf b in preorder, as the harness
for _ in range(3):
    o = tk.tree_attention(q, tree, backend="tk")
torch.cuda.synchronize()
print(f"{t.name}: {len(t.parents)} nodes, {t.n_leaves} leaves, {sum(t.lengths)} tokens, "
      f"o finite: {bool(o.isfinite().all())}")
