"""Kernel folders for one A/B call (session 24): the decode kernel's per-item instructions before its first load.
  head    kernels/ of main before the change (ec5f57b)
  lean    the tile load unrolled to a fixed trip count (one pointer step a row) and the block / row indices divided
          by multiply-high (fast_divmod), the first tile still issued after seq_len[b] is read
  early   lean + the one-stage kernel's tile issued before seq_len[b] is read, its V past the length zeroed after
          (kernels/ as they are)
  nozero  early without the zeroing: the test of NaN past seq_len must fail on it
Usage (repository root): python3 data/h200/dev/s24_decode_issue/variants.py DEST"""
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

dest = Path(sys.argv[1])
EARLY = "if (STAGES == 1 && load_hi > key_lo) load_kv_tile"
LATE = "if (STAGES > 1 && n_tiles > 0) load_kv_tile"
ZERO = "if (STAGES == 1 && key_hi < load_hi) zero_v_past"
for name in ("head", "lean", "early", "nozero"):
    d = dest / name
    shutil.rmtree(d, ignore_errors=True)
    if name == "head":
        tar = subprocess.run(["git", "archive", "ec5f57b", "kernels"], check=True, capture_output=True).stdout
        tarfile.open(fileobj=io.BytesIO(tar)).extractall(d.parent / "_head")
        shutil.move(d.parent / "_head" / "kernels", d)
        shutil.rmtree(d.parent / "_head")
        continue
    shutil.copytree("kernels", d)
    f = d / "hydragen/decode.cu"
    src = f.read_text()
    assert src.count(EARLY) == src.count(LATE) == src.count(ZERO) == 1
    if name == "lean":
        src = src.replace(EARLY, "if (false) load_kv_tile").replace(LATE, "if (n_tiles > 0) load_kv_tile")
    if name == "nozero":
        src = src.replace(ZERO, "if (false) zero_v_past")
    f.write_text(src)
