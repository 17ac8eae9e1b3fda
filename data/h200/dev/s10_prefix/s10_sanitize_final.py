"""scripts/device/sanitize_small.py, plus prefixes whose items outnumber the SMs (every block loops: 2 and 3 consumer
warpgroups, split and unsplit, an unaligned out view)."""
import os, runpy, torch
from tkprefix import tk_hydragen as tkh

for B, Hq, Hkv, P, cw, ns in ((2048, 8, 1, 333, 2, 1), (600, 32, 8, 200, 3, 1), (40, 16, 2, 1000, 2, 4)):
    q = torch.randn(B, 1, Hq, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(1, P, Hkv, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    n = B * Hq * 128
    o = torch.empty(n + 8, device="cuda", dtype=torch.bfloat16)[8:][:n].view(B, 1, Hq, 128)
    lse = torch.empty(B, 1, Hq, device="cuda")
    tkh.prefix_attention(q, k, v, n_splits=ns, consumer_warpgroups=cw, out=(o, lse))
    tkh.prefix_attention(q, k, v, n_splits=ns, consumer_warpgroups=cw)
torch.cuda.synchronize()
print("looped prefix done")
runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "scripts", "device", "sanitize_small.py"), run_name="__main__")
