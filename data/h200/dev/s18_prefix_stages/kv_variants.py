"""Kernel folders with the prefix kernel's key tile changed: kv<N>s<S> = KV_ROWS N, STAGES S for 128-key..."""
import shutil, sys
from pathlib import Path
dest = Path(sys.argv[1])
src = Path("kernels/hydragen/prefix.cu").read_text()
A = "constexpr int KV_ROWS = 128;"
B = "template<int D, int CW> constexpr int STAGES = (D == 64) ? 4 : (CW == 2 ? 3 : 2);"
assert src.count(A) == 1 and src.count(B) == 1
for n, s2, s3, s64 in ((176, 2, 2, 4), (160, 2, 2, 4), (192, 2, 2, 4), (128, 2, 2, 4)):
    d = dest / f"kv{n}s{s2}"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree("kernels", d)
    t = src.replace(A, f"constexpr int KV_ROWS = {n};").replace(
        B, f"template<int D, int CW> constexpr int STAGES = (D == 64) ? {s64} : (CW == 2 ? {s2} : {s3});")
    (d / "hydragen" / "prefix.cu").write_text(t)
print("ok")
