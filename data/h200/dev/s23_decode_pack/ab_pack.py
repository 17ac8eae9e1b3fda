"""One build's decode on short caches: decode_attention alone and the Hydragen step (hydragen_attention_nopad with
one prefix level), at the c1/c3 shapes with suffix 64-512. On a build with decode_items_per_block (session 23) every
shape runs at DECODE_PACK_TILES 1 (one item a block, as before), 4, 8 and 16, in one process; on head at its plan.
Outputs are checked against fp32 on 4 sequences after NaN poisoning; the graphs are replayed interleaved after the
L2 flush (median of 20).
Prints CSV: tag,kind,B,Hq,Hkv,P,S,pack,items_per_block,median_us,rel_err,nan"""
import os
import statistics

import torch

from tkprefix import tk_hydragen as tkh
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

TAG = os.environ.get("TAG", "?")
dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
PACKS = [1, 4, 8, 16] if hasattr(tkh, "DECODE_PACK_TILES") else [0]
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
        for pack in PACKS:
            if pack:
                tkh.DECODE_PACK_TILES = pack
            o = torch.full_like(q, float("nan"))
            lse = torch.full(q.shape[:3], float("nan"), device=dev)
            if kind == "decode":
                launch = lambda q=q, k=k, v=v, o=o, lse=lse: tkh.decode_attention(q, k, v, out=(o, lse))
            else:
                launch = lambda q=q, k=k, v=v, pk=pk, pv=pv, o=o: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv],
                                                                                                out=o)
            launch()
            torch.cuda.synchronize()
            ipb = tkh._plan_decode(q, k, None)[2] if pack else 1
            key = (kind, B, Hq, Hkv, P, S, pack)
            info[key] = (ipb, ((o[rows, 0].float() - ref).norm() / ref.norm()).item(), int(o.isnan().sum()))
            runs[key] = capture_graph(launch)[0].replay
            keep.append((launch, o, lse))   # the graphs' tensors stay alive
        keep.append((q, k, v, pk, pv))
for key, xs in time_interleaved(runs, 20, L2Flusher(device=dev)).items():
    ipb, err, nan = info[key]
    print(TAG + "," + ",".join(map(str, key)) + f",{ipb},{statistics.median(xs):.2f},{err:.2e},{nan}", flush=True)
