"""Session 10, final build: the prefix schedules of one build, A/B by tk_hydragen's settings (graph replay, L2
flushed, interleaved): serial = one block per item, serial loop (main's schedule); landed = the defaults
(persistent grid, cp.async Q of the next item, overlapped loop where rows > 64)."""
import statistics, sys
import torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
SETTINGS = {"serial": (False, False), "landed": (True, True)}
shapes = [("c3 B1024 32/8 P2048", 1024, 32, 8, 2048), ("c3 B512 32/8 P1024", 512, 32, 8, 1024),
          ("c3 B2048 32/8 P4096", 2048, 32, 8, 4096), ("c3 B4096 32/8 P2048", 4096, 32, 8, 2048),
          ("c3 B4096 32/8 P8192", 4096, 32, 8, 8192), ("c3 B2048 8/1 P4096", 2048, 8, 1, 4096),
          ("c3 B4096 8/1 P8192", 4096, 8, 1, 8192), ("c3 B512 8/1 P1024", 512, 8, 1, 1024),
          ("c3 B1024 8/1 P2048", 1024, 8, 1, 2048), ("c4 B64 32/32 P16384", 64, 32, 32, 16384),
          ("c4 B16 32/32 P16384", 16, 32, 32, 16384), ("c1 B32 32/32 P4096", 32, 32, 32, 4096),
          ("c1 B128 32/32 P1024", 128, 32, 32, 1024), ("c5 B32 32/8 P3072", 32, 32, 8, 3072),
          ("scale B1024 32/8 P8192", 1024, 32, 8, 8192), ("scale B1024 32/8 P16384", 1024, 32, 8, 16384)]
print(torch.cuda.get_device_name(0), torch.__version__, file=sys.stderr)
print("label,plan,schedule,median_us,tflops,landed_over_serial")
for (label, B, Hq, Hkv, P) in shapes:
    q = torch.randn(B, 1, Hq, 128, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, P, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    plan = tkh._plan_prefix(q, k, None, None)
    runners, outs = {}, {}
    for name, (ov, pe) in SETTINGS.items():
        tkh.PREFIX_OVERLAP, tkh.PREFIX_PERSISTENT = ov, pe
        g, outs[name] = capture_graph(lambda: tkh.prefix_attention(q, k, v))
        runners[name] = g.replay
    tkh.PREFIX_OVERLAP, tkh.PREFIX_PERSISTENT = True, True
    med = {n: statistics.median(s) for n, s in time_interleaved(runners, 25, flusher).items()}
    torch.cuda.synchronize()
    a, b = outs["serial"][0].double(), outs["landed"][0].double()
    assert ((a - b).norm() / a.norm()).item() < 1e-2, label
    for name in SETTINGS:
        print(f"{label},cw{plan[0]}s{plan[1]},{name},{med[name]:.1f},{4 * B * Hq * P * 128 / med[name] / 1e6:.0f},"
              f"{med['serial'] / med['landed']:.3f}", flush=True)
