"""One c3 B1024 32/8 P2048 prefix launch per variant (base, both) for ncu."""
import torch
from tkprefix import tk_hydragen as tkh
q = torch.randn(1024, 1, 32, 128, device="cuda", dtype=torch.bfloat16)
k, v = (torch.randn(1, 2048, 8, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
for ov, mb in ((False, 0), (True, 132)):
    tkh.PREFIX_OVERLAP, tkh.PREFIX_MAX_BLOCKS = ov, mb
    tkh.prefix_attention(q, k, v, n_splits=1, consumer_warpgroups=2)
torch.cuda.synchronize()
