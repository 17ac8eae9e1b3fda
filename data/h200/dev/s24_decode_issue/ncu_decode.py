"""decode_attention at one shape, twice (ncu profiles the second launch). Env: SHAPE=B,Hq,Hkv,S (D 128 bf16), SL=1:
seq_len = S passed (as the benchmark's Hydragen step does), else causal."""
import os

import torch

from tkprefix import tk_hydragen as tkh

B, Hq, Hkv, S = map(int, os.environ["SHAPE"].split(","))
q = torch.randn(B, 1, Hq, 128, device="cuda", dtype=torch.bfloat16)
k, v = (torch.randn(B, S, Hkv, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
sl = torch.full((B,), S, dtype=torch.int32, device="cuda") if os.environ.get("SL") == "1" else None
for _ in range(2):
    tkh.decode_attention(q, k, v, sl)
torch.cuda.synchronize()
