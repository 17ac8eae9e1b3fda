"""Kernel folders for one A/B call (session 23): the decode kernel's one-stage build for one-tile splits.
  head  kernels/ of the commit before (822c9b0): one two-stage kernel, 3 blocks an SM at D 128
  b4    kernels/ as they are: splits of one tile (caches of <= 64 keys) on a one-stage kernel, 4 blocks an SM
        (128 registers, no spills)
  b5    b4 at 5 blocks an SM (96 registers, 200-492 bytes of spill stores at D 128)
Usage (repository root): python3 data/h200/dev/s23_decode_one_stage/variants.py DEST"""
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

dest = Path(sys.argv[1])
BLOCKS = "constexpr int ONE_TILE_BLOCKS = 4;"
for name in ("head", "b4", "b5"):
    d = dest / name
    shutil.rmtree(d, ignore_errors=True)
    if name == "head":
        tar = subprocess.run(["git", "archive", "822c9b0", "kernels"], check=True, capture_output=True).stdout
        tarfile.open(fileobj=io.BytesIO(tar)).extractall(d.parent / "_head")
        shutil.move(d.parent / "_head" / "kernels", d)
        shutil.rmtree(d.parent / "_head")
    else:
        shutil.copytree("kernels", d)
    if name == "b5":
        f = d / "hydragen/decode.cu"
        src = f.read_text()
        assert src.count(BLOCKS) == 1
        f.write_text(src.replace(BLOCKS, "constexpr int ONE_TILE_BLOCKS = 5;"))
    print(d)
