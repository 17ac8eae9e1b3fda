"""Which kernel of tk_hydragen hangs? Session 16 saw tk_hydragen hang about once in 5,000 calls on an H200 (c7 case 2,
B512 H32/8 P[64x2048] S256; scripts/device/NOTES.md "Session 16", data/h200/dev/s16_hydragen_hang/).
Session 17 found the cause (an idle warp left two mbarrier phases behind; data/h200/dev/s17_idle_warp_hang). In
this bare loop the old kernel never hung. A kernel folder built with -DTKP_FAULT_STALL_IDLE_NS (through
TKPREFIX_KERNELS_DIR) makes it hang at once.

Each variant runs its kernels back to back (an L2 flush before each call, as the harness times them) in a child
process under tkprefix.bench.supervise: no progress for --hang-s seconds = a hang (the child is killed). Variants:
  hydragen         the whole step (prefix kernel into an fp32 slot, then the decode kernel merging it)
  prefix           the prefix kernel alone, as the step launches it (persistent grid: at most one block per SM)
  prefix_grid      the same with a block per work item (tk_hydragen.PREFIX_PERSISTENT off)
  decode_fused     the decode kernel alone, merging fixed prefix slots
Shapes: "c7" (32 stacked rows per kv-head: a 2-consumer block whose second warpgroup has no rows) and "rows256"
(B1024 H32/8 P[16x2048] S256: both warpgroups have rows, the overlapped loop).
Usage (GPU machine, after `tkprefix build`): python scripts/device/hydragen_hang.py [--seconds 25] [--variants prefix]
[--shapes c7] > hang.csv
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {"c7": (512, 32, 8, 64, 2048, 256), "rows256": (1024, 32, 8, 16, 2048, 256)}   # B, Hq, Hkv, Bp, P, S
VARIANTS = ("hydragen", "prefix", "prefix_grid", "decode_fused")


def child(variant: str, shape: str, seconds: float, progress: str) -> None:
    import torch

    from tkprefix import tk_hydragen as tkh
    from tkprefix.bench.supervise import Progress
    from tkprefix.bench.timing import L2Flusher

    B, Hq, Hkv, Bp, P, S = SHAPES[shape]
    dev, dt, D = torch.device("cuda"), torch.bfloat16, 128
    q = torch.randn(B, 1, Hq, D, device=dev, dtype=dt)
    sk, sv = (torch.randn(Bp, P, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    k, v = (torch.randn(B, S, Hkv, D, device=dev, dtype=dt) for _ in range(2))
    ext = tkh._ext()
    tkh.PREFIX_PERSISTENT = variant != "prefix_grid"
    cw, splits = tkh._plan_prefix(q, sk, None)
    ws_o = torch.empty((splits, B, 1, Hq, D), device=dev, dtype=torch.float32)
    ws_lse = torch.empty((splits, B, 1, Hq), device=dev, dtype=torch.float32)
    o, lse = torch.empty_like(q), torch.empty(B, 1, Hq, device=dev, dtype=torch.float32)
    _, d_keys = tkh._plan_decode(q, k, None)
    stream = tkh._stream(q)
    schedule = tkh._prefix_schedule(q, sk, cw, False, splits)   # (bits, grid cap), as the step launches it

    def prefix():
        ext.prefix_attention(q, sk, sv, ws_o, ws_lse, splits, cw, *schedule, stream)

    def decode_fused():
        ext.decode_attention(q, k, v, None, o, lse, 1, d_keys, ws_o, ws_lse, stream)

    run = {"hydragen": lambda: tkh.hydragen_attention_nopad(q, k, v, [sk], [sv]),
           "prefix": prefix, "prefix_grid": prefix, "decode_fused": decode_fused}[variant]
    prefix()   # the slots the fused decode merges
    flusher, prog = L2Flusher(), Progress(progress)
    calls, t0 = 0, time.time()
    while time.time() - t0 < seconds:
        for _ in range(200):
            flusher.flush()
            run()
        torch.cuda.synchronize()
        calls += 200
        prog.step(case=calls, impl=variant, stage="running")
    prog.step(case=calls, impl=variant, stage="done")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=25.0, help="running time of each variant and shape")
    ap.add_argument("--hang-s", type=float, default=20.0, help="no progress for this long = a hang")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, of " + ", ".join(SHAPES))
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "SHAPE", "PROGRESS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    shapes, variants = args.shapes.split(","), args.variants.split(",")
    if not set(shapes) <= set(SHAPES) or not set(variants) <= set(VARIANTS):   # before any device time is spent
        ap.error(f"--shapes {args.shapes!r} / --variants {args.variants!r}: expected names from {list(SHAPES)} / "
                 f"{list(VARIANTS)}")
    if args.child:
        return child(args.child[0], args.child[1], args.seconds, args.child[2])
    from tkprefix.bench.supervise import read_jsonl, supervise

    print("shape,variant,calls,seconds,result", flush=True)
    for shape in shapes:
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                prog = Path(tmp) / "progress.jsonl"
                cmd = [sys.executable, __file__, "--seconds", str(args.seconds), "--child", variant, shape, str(prog)]
                t0 = time.time()
                rc, _ = supervise(cmd, prog, args.hang_s, log=lambda m: print(m, file=sys.stderr))
                steps = read_jsonl(prog)
                calls = steps[-1]["case"] if steps else 0
                result = "hang" if rc is None else "ok" if rc == 0 else f"exit {rc}"
                print(f"{shape},{variant},{calls},{time.time() - t0:.0f},{result}", flush=True)


if __name__ == "__main__":
    main()
