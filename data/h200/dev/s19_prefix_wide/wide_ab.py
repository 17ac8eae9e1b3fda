"""176-key tiles (schedule bit 2) against 128-key tiles in the prefix kernel's serial loop, one process, interleaved.

Per shape (D 128, bf16; 2 consumer warpgroups, one split, the persistent grid): both launches checked against fp32
on 8 sequences after poisoning o with NaN, then graph replays timed after the L2 flush (median of 40, interleaved).
Then the whole step (hydragen_attention_nopad, as the c3 benchmark calls it) with PREFIX_WIDE on and off.
Prints CSV: kind,B,Hq,Hkv,P,S,rows,tiles128,tiles176,us128,us176,ratio,err128,err176,nan
"""
import math
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
fl = L2Flusher(device=dev)
n_sm = torch.cuda.get_device_properties(dev).multi_processor_count
ext = tkh._ext()
SHAPES = [  # (B, Hq, Hkv, P): rows = B * Hq / Hkv
    (512, 32, 8, 1024), (512, 8, 1, 1024), (256, 32, 8, 1024), (1024, 32, 8, 1024), (2048, 32, 8, 1024),
    (128, 32, 8, 1024), (64, 32, 8, 1024), (32, 32, 8, 1024), (1024, 32, 8, 512), (1024, 32, 8, 700),
    (1024, 32, 8, 1408), (512, 32, 8, 300), (333, 32, 8, 1000), (64, 64, 8, 1401), (256, 32, 32, 1024),
]
print("kind,B,Hq,Hkv,P,S,rows,tiles128,tiles176,us128,us176,ratio,err128,err176,nan", flush=True)
torch.manual_seed(0)


def ref_rows(q, k, v, rows):
    qs = q[rows, 0].float()
    R = q.shape[2] // k.shape[2]
    kk, vv = k[0].float().repeat_interleave(R, 1), v[0].float().repeat_interleave(R, 1)
    s = torch.einsum("bhd,phd->bhp", qs, kk) / D ** 0.5
    return torch.einsum("bhp,phd->bhd", s.softmax(-1), vv)


for B, Hq, Hkv, P in SHAPES:
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    k, v = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    rows = torch.linspace(0, B - 1, 8).long()
    ref = ref_rows(q, k, v, rows)
    runs, errs, nans, keep = {}, {}, 0, []
    for sched in (0, 4):
        o = torch.full_like(q, float("nan"))
        lse = torch.full(q.shape[:3], float("nan"), device=dev)
        launch = lambda o=o, lse=lse, sched=sched: ext.prefix_attention(q, k, v, o, lse, 1, 2, sched, n_sm,
                                                                        tkh._stream(q))
        launch()
        torch.cuda.synchronize()
        nans += int(o.isnan().sum()) + int(lse.isnan().sum())
        errs[sched] = ((o[rows, 0].float() - ref).norm() / ref.norm()).item()
        runs[sched] = capture_graph(launch)[0].replay
        keep.append(launch)   # o, lse alive while the graph writes them (a capture empties the allocator's cache)
    t = {key: statistics.median(xs) for key, xs in time_interleaved(runs, 40, fl).items()}
    r = B * Hq // Hkv
    print(f"kernel,{B},{Hq},{Hkv},{P},0,{r},{math.ceil(P / 128)},{math.ceil(P / 176)},{t[0]:.2f},{t[4]:.2f},"
          f"{t[4] / t[0]:.3f},{errs[0]:.2e},{errs[4]:.2e},{nans}", flush=True)
    del q, k, v, runs, keep
    torch.cuda.empty_cache()

# the whole step as c3 runs it (seq_len = S for every sequence), PREFIX_WIDE on and off
for B, Hq, Hkv, P, S in [(512, 32, 8, 1024, 0), (512, 32, 8, 1024, 64), (512, 32, 8, 1024, 256),
                         (512, 32, 8, 1024, 512)]:
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    sk, sv = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    k, v = (torch.randn(B, S, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    sl = torch.full((B,), S, dtype=torch.int32, device=dev)
    runs, outs = {}, {}
    for wide in (False, True):
        tkh.PREFIX_WIDE = wide
        outs[wide] = tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], seq_len=sl).float()
        runs[wide] = capture_graph(lambda: tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], seq_len=sl))[0].replay
    tkh.PREFIX_WIDE = True
    diff = ((outs[True] - outs[False]).norm() / outs[False].norm()).item()
    t = {key: statistics.median(xs) for key, xs in time_interleaved(runs, 40, fl).items()}
    print(f"step,{B},{Hq},{Hkv},{P},{S},{B * Hq // Hkv},{math.ceil(P / 128)},{math.ceil(P / 176)},{t[False]:.2f},"
          f"{t[True]:.2f},{t[True] / t[False]:.3f},0,{diff:.2e},0", flush=True)
