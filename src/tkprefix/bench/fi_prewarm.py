"""Build FlashInfer's JIT modules ahead of the benchmark (run in the background while the TK extension builds).

``python -m tkprefix.bench.fi_prewarm`` runs the ``flashinfer_cascade`` and ``flashinfer_decode`` adapters once on
tiny cases with every head layout the sweeps use (32/32, 8/1, 32/8), one and two levels, in the dtypes of
``$TKPREFIX_FLASHINFER_DTYPES`` (default bf16 and fp16: one sm90 prefill module each, which both adapters use), and
compiles the Triton tree peers (FastTree, DeFT, SGLang) for bf16/fp16 and those layouts, so the timed run finds every
module in its cache. Prints what it built and how long it took; exits 0 even if FlashInfer is missing (the benchmark
then reports it as unavailable).
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    t0 = time.time()
    try:
        import torch

        import flashinfer  # noqa: F401
    except Exception as e:  # noqa: BLE001
        print(f"[fi_prewarm] flashinfer unavailable: {type(e).__name__}: {e}", flush=True)
        return 0
    from .cases import Case
    from .inputs import make_inputs
    from .peers import FlashInferCascade
    from .peers_tree import FlashInferDecode

    dtypes = [d.strip() for d in os.environ.get("TKPREFIX_FLASHINFER_DTYPES", "bfloat16,float16").split(",")]
    layouts = [(dt, hq, hkv) for dt in dtypes for hq, hkv in ((32, 32), (8, 1), (32, 8))
               if dt == "bfloat16" or hkv != 1]
    for impl in (FlashInferCascade(), FlashInferDecode()):
        for dt, hq, hkv in layouts:
            for levels, s in ((((1, 64),), 32), ((), 64), (((1, 128),), 0), (((1, 64), (2, 64)), 16), (((1, 64),), 9)):
                case = Case("prewarm", 4, hq, hkv, 128, levels, s, dtype=dt)
                try:
                    p = impl.prepare(case, make_inputs(case))
                    p.run()
                    torch.cuda.synchronize()
                    print(f"[fi_prewarm] ok {impl.name} {dt} {hq}/{hkv} levels={levels} suffix={s} "
                          f"({time.time() - t0:.0f} s)", flush=True)
                except Exception as e:  # noqa: BLE001
                    print(f"[fi_prewarm] FAILED {impl.name} {dt} {hq}/{hkv} levels={levels} suffix={s}: "
                          f"{type(e).__name__}: {e}", flush=True)
    # The Triton tree peers compile per dtype and GQA group on first use: compile them here, outside the timed run.
    from .peers_tree import TREE_PEERS

    for impl in (i for i in TREE_PEERS if i.name != "flashinfer_decode"):
        for dt, hq, hkv in [(d, hq, hkv) for d in ("bfloat16", "float16") for hq, hkv in ((32, 32), (8, 1), (32, 8))]:
            case = Case("prewarm", 4, hq, hkv, 128, ((1, 64), (2, 48)), 9, dtype=dt)
            reason = impl.unavailable_reason(case)
            if reason:
                print(f"[fi_prewarm] skip {impl.name} {dt} {hq}/{hkv}: {reason}", flush=True)
                continue
            try:
                impl.prepare(case, make_inputs(case)).run()
                torch.cuda.synchronize()
                print(f"[fi_prewarm] ok {impl.name} {dt} {hq}/{hkv} ({time.time() - t0:.0f} s)", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"[fi_prewarm] FAILED {impl.name} {dt} {hq}/{hkv}: {type(e).__name__}: {e}", flush=True)
    print(f"[fi_prewarm] done in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
