"""Session 13 (written; to run first in the next session with device time): does launching the co-run prefix on the
caller's stream, the decode on the side stream, remove the eager loss of the 44772a2 recording (c3 steps 1.1-1.4x
slower eager, 0.88-0.92x under CUDA graphs)? Per c3 shape with a suffix: serial (overlap=False), the library's co-run
(prefix_sms = _corun_sms's pick: prefix on the side stream) and the swapped co-run (here), each eager and as a CUDA
graph; L2 flushed, interleaved. From the repository root: python3 data/h200/dev/s13_eager_order/s13_eager_order.py"""
import statistics, sys
import torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
ext = tkh._ext()
n_sm = tkh._num_sms(0)
side = tkh._side_stream(0)


def corun_swapped(q, pk, pv, k, v, sl, n_p):
    """hydragen_attention_nopad's co-run with the streams swapped: prefix on the caller's stream, decode on the side."""
    B, Nq, Hq, D = q.shape
    cw, s = tkh._plan_prefix(q, pk, None, None, n_p)
    d_splits, d_keys = tkh._plan_decode(q, k, None)
    ws_o = torch.empty((s + d_splits, B, Nq, Hq, D), device=dev, dtype=torch.float32)
    ws_lse = torch.empty((s + d_splits, B, Nq, Hq), device=dev, dtype=torch.float32)
    o, lse = torch.empty_like(q), torch.empty(B, Nq, Hq, device=dev, dtype=torch.float32)
    main = torch.cuda.current_stream()
    fork = torch.cuda.Event(); fork.record(main); side.wait_event(fork)
    sched = tkh._prefix_schedule(q, pk, tkh.PREFIX_PINGPONG, s, n_p)
    ext.prefix_attention(q, pk, pv, ws_o[:s], ws_lse[:s], s, cw, *sched, main.cuda_stream)
    ext.decode_attention(q, k, v, sl, ws_o[s:], ws_lse[s:], d_splits, d_keys, None, None, side.cuda_stream)
    join = torch.cuda.Event(); join.record(side); main.wait_event(join)
    ext.merge_slots([(ws_o, ws_lse)], o, lse, main.cuda_stream)
    return o


print(torch.cuda.get_device_name(0), torch.__version__, file=sys.stderr)
print("Hq,Hkv,B,P,S,n_p,variant,mode,median_us,rel_diff")
for (Hq, Hkv) in ((8, 1), (32, 8)):
    for (B, P) in ((512, 1024), (1024, 2048), (2048, 4096), (4096, 8192)):
        for S in (256, 512):
            torch.manual_seed(B + S)
            q = torch.randn(B, 1, Hq, 128, device=dev, dtype=torch.bfloat16)
            pk, pv = (torch.randn(1, P, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
            k, v = (torch.randn(B, S, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
            sl = torch.full((B,), S, device=dev, dtype=torch.int32)
            n_p = tkh._corun_sms(q, k, [(pk, pv)], n_sm) or n_sm // 2
            fns = {"serial": lambda: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl, overlap=False),
                   "corun_side": lambda: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl, prefix_sms=n_p),
                   "corun_main": lambda: corun_swapped(q, pk, pv, k, v, sl, n_p)}
            runners, outs = {}, {}
            for name, fn in fns.items():
                g, outs[name] = capture_graph(fn)
                runners[(name, "graph")] = g.replay
                runners[(name, "eager")] = fn
            med = {key: statistics.median(x) for key, x in time_interleaved(runners, 15, flusher).items()}
            torch.cuda.synchronize()
            ref = outs["serial"].double()
            for (name, mode), m in med.items():
                diff = ((outs[name].double() - ref).norm() / ref.norm()).item()
                assert diff < 1e-2, (Hq, Hkv, B, P, S, name, diff)
                print(f"{Hq},{Hkv},{B},{P},{S},{n_p},{name},{mode},{m:.1f},{diff:.1e}", flush=True)
            del runners, outs, q, pk, pv, k, v
            torch.cuda.empty_cache()
