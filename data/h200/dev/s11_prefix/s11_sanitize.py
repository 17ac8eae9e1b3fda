"""scripts/device/sanitize_small.py at the defaults, plus prefixes whose blocks loop over items: a grid capped at 3
blocks (2 and 3 consumer warpgroups, split and unsplit, <= 64 and > 64 rows), and 256 items on the default grid."""
import os, runpy, torch
from tkprefix import tk_hydragen as tkh

def run(B, Hq, Hkv, P, cw, ns, Nq=1):
    q = torch.randn(B, Nq, Hq, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(1, P, Hkv, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    tkh.prefix_attention(q, k, v, n_splits=ns, consumer_warpgroups=cw)

run(4096, 8, 1, 200, 2, 1)                                # 256 items on the default (n_sm) grid
default = tkh._prefix_schedule
tkh._prefix_schedule = lambda q, k, pp, s: (default(q, k, pp, s)[0], 3)
for args in ((40, 16, 2, 1000, 2, 4), (600, 32, 8, 200, 3, 1), (300, 8, 1, 700, 2, 2), (30, 8, 8, 500, 2, 3, 2)):
    run(*args)
tkh._prefix_schedule = default
torch.cuda.synchronize()
print("looped prefix done")
runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "scripts", "device", "sanitize_small.py"), run_name="__main__")
