"""Session 12: co-run a compute-bound prefix (persistent grid capped at n_p SMs, side stream, launched first) with
the memory-bound suffix decode (main stream, all SMs as they free up), then one merge; against the serial default.
c3 shapes (suffix 64/256/512, 32/8 and 8/1); graph replay, L2 flushed, variants interleaved."""
import math, statistics, sys
import torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
ext = tkh._ext()
n_sm = tkh._num_sms(0)
side_lo = torch.cuda.Stream(priority=0)
side_hi = torch.cuda.Stream(priority=-1)


def corun(q, pk, pv, k, v, sl, n_p, side, prefix_first=True):
    B, Nq, Hq, D = q.shape
    rows = (B // pk.shape[0]) * Nq * (Hq // pk.shape[2])
    cw, s = tkh.prefix_plan(rows, pk.shape[0] * pk.shape[2], pk.shape[1], n_p or n_sm, B * Nq * Hq, D)
    d_splits, d_keys = tkh._plan_decode(q, k, None)
    ws_o = torch.empty((s + d_splits, B, Nq, Hq, D), device=dev, dtype=torch.float32)
    ws_lse = torch.empty((s + d_splits, B, Nq, Hq), device=dev, dtype=torch.float32)
    o = torch.empty_like(q)
    lse = torch.empty(B, Nq, Hq, device=dev, dtype=torch.float32)
    main = torch.cuda.current_stream()
    sched, _ = tkh._prefix_schedule(q, pk, False, s)
    fork = torch.cuda.Event(); fork.record(main); side.wait_event(fork)
    def pre():
        ext.prefix_attention(q, pk, pv, ws_o[:s], ws_lse[:s], s, cw, sched, n_p, side.cuda_stream)
    def dec():
        ext.decode_attention(q, k, v, sl, ws_o[s:], ws_lse[s:], d_splits, d_keys, None, None, main.cuda_stream)
    if prefix_first:
        pre(); dec()
    else:
        dec(); pre()
    join = torch.cuda.Event(); join.record(side); main.wait_event(join)
    ext.merge_slots([(ws_o, ws_lse)], o, lse, main.cuda_stream)
    return o


print(torch.cuda.get_device_name(0), torch.__version__, file=sys.stderr)
print("Hq,Hkv,B,P,S,variant,median_us")
shapes = [(hq, hkv, B, P, S) for (hq, hkv) in ((8, 1), (32, 8))
          for (B, P) in ((512, 1024), (1024, 2048), (2048, 4096), (4096, 8192)) for S in (64, 256, 512)]
for (Hq, Hkv, B, P, S) in shapes:
    torch.manual_seed(0)
    q = torch.randn(B, 1, Hq, 128, device=dev, dtype=torch.bfloat16)
    pk, pv = (torch.randn(1, P, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(B, S, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    sl = torch.full((B,), S, device=dev, dtype=torch.int32)
    fns = {"serial": lambda: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl),
           "prefix_alone": lambda: tkh.prefix_attention(q, pk, pv)[0],
           "decode_alone": lambda: tkh.decode_attention(q, k, v, sl)[0]}
    for n_p in (44, 66, 88, 100, 110, 120):
        fns[f"corun{n_p}"] = lambda n_p=n_p: corun(q, pk, pv, k, v, sl, n_p, side_lo)
    fns["corun88_hi"] = lambda: corun(q, pk, pv, k, v, sl, 88, side_hi)
    fns["corun0_hi_decfirst"] = lambda: corun(q, pk, pv, k, v, sl, 0, side_hi, prefix_first=False)
    fns["corun88_decfirst"] = lambda: corun(q, pk, pv, k, v, sl, 88, side_lo, prefix_first=False)
    runners, outs = {}, {}
    for name, fn in fns.items():
        g, outs[name] = capture_graph(fn)
        runners[name] = g.replay
    med = {n: statistics.median(x) for n, x in time_interleaved(runners, 15, flusher).items()}
    torch.cuda.synchronize()
    ref = outs["serial"].double()
    for name, o in outs.items():
        if name.startswith("corun"):
            err = ((o.double() - ref).norm() / ref.norm()).item()
            assert err < 1e-2, (Hq, Hkv, B, P, S, name, err)
    for name, m in med.items():
        print(f"{Hq},{Hkv},{B},{P},{S},{name},{m:.1f}", flush=True)
    del runners, outs, q, pk, pv, k, v
    torch.cuda.empty_cache()
