"""decode_attention at one shape, twice (ncu profiles the second launch). Env: SHAPE=B,Hq,Hkv,S (D 128 bf16), PACK
(DECODE_PACK_TILES on a build that has it)."""
import os

import torch

from tkprefix import tk_hydragen as tkh

B, Hq, Hkv, S = map(int, os.environ["SHAPE"].split(","))
if "PACK" in os.environ:
    tkh.DECODE_PACK_TILES = int(os.environ["PACK"])
q = torch.randn(B, 1, Hq, 128, device="cuda", dtype=torch.bfloat16)
k, v = (torch.randn(B, S, Hkv, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
for _ in range(2):
    tkh.decode_attention(q, k, v)
torch.cuda.synchronize()
