"""`tkprefix build-peers`: build the peers that compile from carried third-party code, ahead of the benchmark (a
build inside a benchmark child would look like a hang to its supervisor):

* upstream ChunkAttention (``scripts/peers/build_chunk_attn_upstream.sh``, from ``third_party/chunk-attention``);
* the TK chunk-first kernel of jacksontromero/chunk-attention-tk (``tkprefix.bench.prior_tk``);
* FlashInfer's JIT modules and the Triton tree peers' kernels (``tkprefix.bench.fi_prewarm``: minutes on first use).

All three run at once. A peer that is not carried or does not build is reported here and becomes rows saying why; the
command itself always exits 0 so the pipeline goes on.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from . import prior_tk

_REPO = Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    script = _REPO / "scripts" / "peers" / "build_chunk_attn_upstream.sh"
    ca = None
    if (_REPO / "third_party" / "chunk-attention" / "CMakeLists.txt").is_file():
        ca = subprocess.Popen(["bash", str(script)], cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    else:
        print("upstream ChunkAttention: not carried (third_party/chunk-attention); its rows will say so")
    # FlashInfer JIT + Triton compiles (GPU-light, CPU-heavy): in its own process, beside the two builds
    warm = subprocess.Popen([sys.executable, "-m", "tkprefix.bench.fi_prewarm"], cwd=_REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        mod = prior_tk.build(verbose="--verbose" in (argv or []))
        print(f"prior_tk_chunk_first: built {mod.__file__}")
    except Exception as e:  # noqa: BLE001 - its rows carry the reason
        print(f"prior_tk_chunk_first: not built: {type(e).__name__}: {e}")
    if ca is not None:
        out, _ = ca.communicate()
        sys.stdout.write(out)
        print(f"upstream ChunkAttention: build rc={ca.returncode}")
    out, _ = warm.communicate()
    sys.stdout.write(out)
    print(f"fi_prewarm: rc={warm.returncode}")
    print(f"build-peers: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
