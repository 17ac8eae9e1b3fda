"""A/B in one process: the overlapped cw2 kernel with 16-byte (wide) vs 4-byte (narrow) o stores; graph replay, L2
flushed, interleaved. TKP_S10_NARROW is read at each launch; each graph captures the kernel chosen at capture."""
import os, statistics, torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved
dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
print("label,variant,median_us,tflops")
for (B, Hq, Hkv, P) in ((1024, 32, 8, 2048), (1024, 32, 8, 8192), (2048, 8, 1, 4096), (1024, 32, 8, 16384), (512, 32, 8, 1024)):
    q = torch.randn(B, 1, Hq, 128, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, P, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    runners = {}
    for name, flag in (("wide", "0"), ("narrow", "1")):
        os.environ["TKP_S10_NARROW"] = flag
        g, _ = capture_graph(lambda: tkh.prefix_attention(q, k, v, n_splits=1, consumer_warpgroups=2))
        runners[name] = g.replay
    os.environ["TKP_S10_NARROW"] = "0"
    ow = tkh.prefix_attention(q, k, v, n_splits=1, consumer_warpgroups=2)[0]
    os.environ["TKP_S10_NARROW"] = "1"
    on = tkh.prefix_attention(q, k, v, n_splits=1, consumer_warpgroups=2)[0]
    assert torch.equal(ow, on), "wide and narrow stores differ"
    for name, s in time_interleaved(runners, 25, flusher).items():
        med = statistics.median(s)
        print(f"B{B} {Hq}/{Hkv} P{P},{name},{med:.1f},{4 * B * Hq * P * 128 / med / 1e6:.0f}", flush=True)
