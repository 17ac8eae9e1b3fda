"""Session 11: every prefix plan (consumer warpgroups x key splits) of the c3 prefixes and a few others, timed at the
landed schedule defaults (graph replay, L2 flushed, plans interleaved), against prefix_plan's pick."""
import math, statistics, sys
import torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
shapes = [(512, 32, 8, 1024), (1024, 32, 8, 2048), (2048, 32, 8, 4096), (4096, 32, 8, 8192),
          (512, 8, 1, 1024), (1024, 8, 1, 2048), (2048, 8, 1, 4096), (4096, 8, 1, 8192),
          (4096, 32, 8, 2048), (1024, 32, 8, 16384), (64, 32, 32, 16384), (128, 32, 32, 4096), (32, 32, 8, 3072),
          (256, 32, 32, 8192)]
print(torch.cuda.get_device_name(0), torch.__version__, file=sys.stderr)
print("B,Hq,Hkv,P,cw,splits,picked,median_us,tflops")
for (B, Hq, Hkv, P) in shapes:
    q = torch.randn(B, 1, Hq, 128, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, P, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    pick = tkh._plan_prefix(q, k, None, None)
    n_tiles = math.ceil(P / tkh.PREFIX_TILE_KEYS)
    plans = {(cw, s) for cw in (2, 3) for s in (1, 2, 3, 4, 6, 8) if s <= n_tiles
             and math.ceil(n_tiles / math.ceil(n_tiles / s)) == s}
    plans.add(pick)
    runners, outs = {}, {}
    for cw, s in sorted(plans):
        g, outs[cw, s] = capture_graph(lambda cw=cw, s=s: tkh.prefix_attention(q, k, v, n_splits=s,
                                                                              consumer_warpgroups=cw))
        runners[cw, s] = g.replay
    med = {n: statistics.median(x) for n, x in time_interleaved(runners, 15, flusher).items()}
    torch.cuda.synchronize()
    ref = outs[pick][0].double()
    for key, o in outs.items():
        assert ((o[0].double() - ref).norm() / ref.norm()).item() < 1e-2, (B, Hq, Hkv, P, key)
    for (cw, s), m in sorted(med.items(), key=lambda kv: kv[1]):
        print(f"{B},{Hq},{Hkv},{P},{cw},{s},{int((cw, s) == pick)},{m:.1f},{4 * B * Hq * P * 128 / m / 1e6:.0f}",
              flush=True)
    del runners, outs
