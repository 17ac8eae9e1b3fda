"""The decode kernel's shared-memory ring, deeper: kernel folders for one A/B call (session 22).
  head  kernels/ as it is (two stages: the next tile's load issued, then the wait for this one)
  st2   kernels/ with decode_ring.patch (decode.cu's ring of STAGES tiles) at 2: head's schedule, a neutral check
  st3   STAGES 3: two tiles in flight while one is computed; 104 KB of shared memory a block at D 128 (2 blocks an SM)
  st4   STAGES 4: 139 KB (1 block an SM), the curve's far end
Usage (repository root, on main 08c4267): python3 data/h200/dev/s22_decode_stages/variants.py DEST"""
import shutil
import subprocess
import sys
from pathlib import Path

dest, here = Path(sys.argv[1]), Path(__file__).resolve().parent
RING = "constexpr int STAGES    = 2;"
for name in ("head", "st2", "st3", "st4"):
    d = dest / name
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree("kernels", d)
    if name != "head":
        subprocess.run(["patch", "-s", "-p2", "-d", str(d), "-i", str(here / "decode_ring.patch")], check=True)
        f = d / "hydragen/decode.cu"
        src = f.read_text()
        assert src.count(RING) == 1
        f.write_text(src.replace(RING, f"constexpr int STAGES    = {name[2:]};"))
    print(d)
