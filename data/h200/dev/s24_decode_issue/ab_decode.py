"""One build's decode on short caches: decode_attention alone and the Hydragen step (hydragen_attention_nopad with
one prefix level), at the c1/c3 shapes with suffix 64-512, each without seq_len (causal) and with seq_len = S (the
benchmark's call: a length read in the kernel). Outputs are checked against fp32 on 4 sequences after NaN poisoning;
the graphs are replayed interleaved after the L2 flush (median of 20).
Prints CSV: tag,kind,seq_len,B,Hq,Hkv,P,S,median_us,rel_err,nan"""
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

TAG = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
DECODE = [(64, 32, 32, 64), (128, 32, 32, 64), (512, 32, 8, 64), (1024, 32, 8, 64), (2048, 32, 8, 64),
          (2048, 8, 1, 64), (4096, 8, 1, 64), (1024, 32, 8, 256), (2048, 8, 1, 256), (128, 32, 32, 512)]
STEP = [(64, 32, 32, 1024, 64), (128, 32, 32, 4096, 64), (1024, 32, 8, 2048, 64), (2048, 32, 8, 4096, 64),
        (4096, 8, 1, 8192, 64), (2048, 8, 1, 4096, 256), (1024, 32, 8, 2048, 256)]
torch.manual_seed(0)
runs, info, keep = {}, {}, []
for kind, shapes in (("decode", [(B, Hq, Hkv, 0, S) for B, Hq, Hkv, S in DECODE]), ("step", STEP)):
    for B, Hq, Hkv, P, S in shapes:
        q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
        k, v = (torch.randn(B, S, Hkv, D, device=dev, dtype=dt) for _ in range(2))
        pk, pv = (torch.randn(1, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
        rows = torch.linspace(0, B - 1, 4).long()
        R = Hq // Hkv
        keys = torch.cat([pk.expand(4, -1, -1, -1), k[rows]], 1).float().repeat_interleave(R, 2)
        vals = torch.cat([pv.expand(4, -1, -1, -1), v[rows]], 1).float().repeat_interleave(R, 2)
        s = torch.einsum("bhd,bphd->bhp", q[rows, 0].float(), keys) / D ** 0.5
        ref = torch.einsum("bhp,bphd->bhd", s.softmax(-1), vals)
        for with_len in (0, 1):
            sl = torch.full((B,), S, dtype=torch.int32, device=dev) if with_len else None
            o = torch.full_like(q, float("nan"))
            lse = torch.full(q.shape[:3], float("nan"), device=dev)
            if kind == "decode":
                launch = lambda q=q, k=k, v=v, sl=sl, o=o, lse=lse: tkh.decode_attention(q, k, v, sl, out=(o, lse))
            else:
                launch = lambda q=q, k=k, v=v, pk=pk, pv=pv, sl=sl, o=o: tkh.hydragen_attention_nopad(
                    q, k, v, [pk], [pv], seq_len=sl, out=o)
            launch()
            torch.cuda.synchronize()
            key = (kind, with_len, B, Hq, Hkv, P, S)
            info[key] = (((o[rows, 0].float() - ref).norm() / ref.norm()).item(), int(o.isnan().sum()))
            runs[key] = capture_graph(launch)[0].replay
            keep.append((launch, o, lse, sl))   # the graphs' tensors stay alive
        keep.append((q, k, v, pk, pv))
for key, xs in time_interleaved(runs, 20, L2Flusher(device=dev)).items():
    err, nan = info[key]
    print(TAG + "," + ",".join(map(str, key)) + f",{statistics.median(xs):.2f},{err:.2e},{nan}", flush=True)
