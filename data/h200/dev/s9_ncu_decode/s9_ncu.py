"""Session 9: ncu of TK's decode kernel against PyTorch SDPA (FlashAttention) where TK streams K/V slower: one query
per sequence, 32/32 heads, B128, S2048, bf16 (ours ~1,013 us graph, SDPA ~957 in session 8). Warm both up, then one
call of each inside cudaProfilerStart/Stop (ncu --profile-from-start off)."""
import torch

import tkprefix
from tkprefix.hydragen import sdpa_decode

B, S, H, D = 128, 2048, 32, 128
g = torch.Generator(device="cuda").manual_seed(9)
q = torch.randn(B, 1, H, D, device="cuda", dtype=torch.bfloat16, generator=g)
k = torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16, generator=g)
v = torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16, generator=g)
tk = lambda: tkprefix.hydragen_attention_nopad(q, k, v, [], [], backend="tk")
sd = lambda: sdpa_decode(q, k, v)
for _ in range(3):
    tk(), sd()
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStart()
tk()
torch.cuda.synchronize()
sd()
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
print("ok")
