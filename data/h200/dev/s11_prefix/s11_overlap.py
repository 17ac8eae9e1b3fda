"""Session 11: the overlapped loop against the serial loop by tiles per work item (persistent grid, graph replay,
L2 flushed, interleaved), on split and unsplit prefixes with > 64 stacked rows; and the plan the defaults pick."""
import math, statistics, sys
import torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
# (B, Hq, Hkv, P, splits): tiles per item = ceil(P/128 / splits)
shapes = [(512, 8, 1, 1024, 4), (512, 8, 1, 1024, 3), (512, 8, 1, 1024, 2), (512, 8, 1, 1024, 1),
          (128, 32, 32, 1024, 4), (128, 32, 32, 1024, 2), (128, 32, 32, 1024, 1),
          (32, 32, 8, 3072, 8), (32, 32, 8, 3072, 6), (32, 32, 8, 3072, 4), (32, 32, 8, 3072, 3), (32, 32, 8, 3072, 2),
          (1024, 8, 1, 2048, 4), (1024, 8, 1, 2048, 2), (1024, 8, 1, 2048, 1),
          (256, 32, 32, 8192, 8), (256, 32, 32, 8192, 4), (256, 32, 32, 8192, 2),
          (512, 32, 8, 1024, 1), (1024, 32, 8, 1024, 1), (1024, 32, 8, 2048, 1), (2048, 32, 8, 4096, 1),
          (4096, 32, 8, 2048, 1), (128, 32, 32, 4096, 4), (128, 32, 32, 4096, 2)]
print(torch.cuda.get_device_name(0), torch.__version__, file=sys.stderr)
print("B,Hq,Hkv,P,cw,splits,tiles_per_item,default_plan,overlap_us,serial_us,serial_over_overlap")
for (B, Hq, Hkv, P, s) in shapes:
    q = torch.randn(B, 1, Hq, 128, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, P, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    pick = tkh._plan_prefix(q, k, None, None)
    cw = 2
    runners, outs = {}, {}
    for name, min_tiles in (("overlap", 0), ("serial", 10**9)):
        tkh.PREFIX_OVERLAP_MIN_TILES = min_tiles
        g, outs[name] = capture_graph(lambda: tkh.prefix_attention(q, k, v, n_splits=s, consumer_warpgroups=cw))
        runners[name] = g.replay
    tkh.PREFIX_OVERLAP_MIN_TILES = 4
    med = {n: statistics.median(x) for n, x in time_interleaved(runners, 25, flusher).items()}
    torch.cuda.synchronize()
    a, b = outs["serial"][0].double(), outs["overlap"][0].double()
    assert ((a - b).norm() / a.norm()).item() < 1e-2
    tps = math.ceil(math.ceil(P / 128) / s)
    print(f"{B},{Hq},{Hkv},{P},{cw},{s},{tps},cw{pick[0]}s{pick[1]},{med['overlap']:.1f},{med['serial']:.1f},"
          f"{med['serial'] / med['overlap']:.3f}", flush=True)
