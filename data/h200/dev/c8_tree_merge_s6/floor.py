"""long10 floor: what reading the tree's KV bytes costs after the harness's L2 flush, beside tk_tree (graph, median)."""
import yaml, torch, statistics
from tkprefix import PagedTree, tk_tree
from tkprefix.bench.trees import generate
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
H, D = 32, 128
fl = L2Flusher()
specs = {t["name"]: t for t in yaml.safe_load(open("config/sweeps/c8_trees.yaml"))["grid"]["trees"]}
print("tree,dtype,what,mbytes,median_us,tb_per_s", flush=True)
for name in ("long10", "sample64"):
    t = generate(specs[name])
    for dt in (torch.float16, torch.bfloat16):
        torch.manual_seed(0)
        ks = [torch.randn(n, H, D, device="cuda", dtype=dt) for n in t.lengths]
        vs = [torch.randn(n, H, D, device="cuda", dtype=dt) for n in t.lengths]
        tree = PagedTree.from_nodes(list(t.parents), ks, vs, page_size=16)
        q = torch.randn(tree.n_leaves, H, D, device="cuda", dtype=dt)
        plan = tree.plan(H)
        kv = torch.cat([tree.k_pool.reshape(-1), tree.v_pool.reshape(-1)])
        nb = kv.numel() * kv.element_size()
        dst = torch.empty_like(kv)
        fns = {"tk_tree": lambda: tk_tree.tree_attention(q, tree, plan),
               "sum_f32": lambda: kv.sum(dtype=torch.float32),
               "amax": lambda: torch.amax(kv),
               "copy": lambda: dst.copy_(kv)}
        graphs = {k: capture_graph(f)[0] for k, f in fns.items()}
        samples = time_interleaved({k: g.replay for k, g in graphs.items()}, 30, fl)
        for k, s in samples.items():
            m = statistics.median(s); b = nb * (2 if k == "copy" else 1)
            print(f"{name},{str(dt)[6:]},{k},{b/1e6:.1f},{m:.2f},{b/m/1e6:.2f}", flush=True)
        # per kernel, eager after a flush (torch.profiler)
        from torch.profiler import profile, ProfilerActivity
        for _ in range(3): tk_tree.tree_attention(q, tree, plan)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                fl.flush(); tk_tree.tree_attention(q, tree, plan)
            torch.cuda.synchronize()
        for e in prof.key_averages():
            if "tree" in e.key or "merge" in e.key:
                print(f"{name},{str(dt)[6:]},kernel:{e.key[:60].replace(',', ';')},,{e.device_time / 1:.2f},", flush=True)
        del graphs, tree, ks, vs, q, kv, dst
