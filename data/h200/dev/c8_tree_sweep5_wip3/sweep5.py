"""CostModel sweep on the c8 trees with the harness's timing (graph replay, L2 flushed, interleaved, median)."""
import yaml, torch, statistics
from tkprefix import PagedTree, tk_tree, CostModel
from tkprefix.bench.trees import generate
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
H, D = 32, 128
VARIANTS = {"default": {}, "sbps1": {"small_blocks_per_sm": 1}, "sbps3": {"small_blocks_per_sm": 3},
            "mpt2": {"min_piece_tiles": 2}, "mpt8": {"min_piece_tiles": 8}, "dpt32": {"decode_piece_tokens": 32},
            "dpt128": {"decode_piece_tokens": 128}, "nsm198": {"n_sm": 198}}
fl = L2Flusher()
print("tree,dtype,variant,n_mma,n_items,median_us", flush=True)
for spec in yaml.safe_load(open("config/sweeps/c8_trees.yaml"))["grid"]["trees"]:
    name, t = spec["name"], generate(spec)
    for dt in (torch.float16, torch.bfloat16):
        torch.manual_seed(0)
        ks = [torch.randn(n, H, D, device="cuda", dtype=dt) for n in t.lengths]
        vs = [torch.randn(n, H, D, device="cuda", dtype=dt) for n in t.lengths]
        tree = PagedTree.from_nodes(list(t.parents), ks, vs, page_size=16)
        q = torch.randn(tree.n_leaves, H, D, device="cuda", dtype=dt)
        plans = {v: tree.plan(H, CostModel(**kw)) for v, kw in VARIANTS.items()}
        graphs = {v: capture_graph(lambda p=p: tk_tree.tree_attention(q, tree, p))[0] for v, p in plans.items()}
        samples = time_interleaved({v: g.replay for v, g in graphs.items()}, 20, fl)
        for v, s in samples.items():
            p = plans[v]
            print(f"{name},{str(dt)[6:]},{v},{p.n_mma_items},{p.n_items},{statistics.median(s):.2f}", flush=True)
        del graphs, tree, ks, vs, q
