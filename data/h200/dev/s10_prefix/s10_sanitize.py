"""scripts/device/sanitize_small.py under the variant in $S10_VARIANT, plus a prefix whose 3 blocks loop over items."""
import os, runpy, torch
import s10_plugin  # noqa: F401  (sets the variant)
from tkprefix import tk_hydragen as tkh

q = torch.randn(40, 2, 8, 128, device="cuda", dtype=torch.bfloat16)
k, v = (torch.randn(2, 333, 2, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
for cw, ns in ((2, 1), (2, 3), (3, 2)):
    o, lse = tkh.prefix_attention(q, k, v, n_splits=ns, consumer_warpgroups=cw)
torch.cuda.synchronize()
print("looped prefix done")
runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "scripts", "device", "sanitize_small.py"), run_name="__main__")
