"""Session 38: where the fused kernel's time goes (prefix_decode=True), per build: session 37's fused_trace.py (the
prefix kernel's per-item %globaltimer stamps, plus the decode warpgroup's start and end per block, trace_stamps.patch)
with the prefix items split by whether they start before or after their own block's decode has ended. Items after
it run beside no decode: if they are still slower than the prefix alone, the fused kernel's own prefix
configuration (2 K/V stages, 200 registers) is the cause, not sharing the SM.
    python3 fused_trace.py TAG >> trace.csv"""
import statistics
import sys

import torch

from tkprefix import tk_hydragen as tkh

ext = tkh._ext()
SHAPES = [(2048, 32, 8, 4096, 64), (4096, 8, 1, 8192, 64), (512, 8, 1, 1024, 64), (2048, 8, 1, 4096, 256),
          (2048, 32, 8, 4096, 256), (2048, 32, 8, 4096, 0)]
GRID = 1024   # decode stamps below the pointer: 2 a block
r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
med = lambda xs: statistics.median(xs) if xs else float("nan")
for B, Hq, Hkv, P, S in SHAPES:
    S_ = max(S, 1)   # suffix 0: a one-key suffix for the fused launch (the prefix alone is the row to read)
    q, k, v, sk, sv = r(B, 1, Hq, 128), r(B, S_, Hkv, 128), r(B, S_, Hkv, 128), r(1, P, Hkv, 128), r(1, P, Hkv, 128)
    for mode, fn in (("prefix", lambda: tkh.prefix_attention(q, sk, sv)),
                     ("fused", lambda: tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], prefix_decode=True))):
        for _ in range(3):
            fn()
        buf = torch.zeros(2 * GRID + 8 * 65536, dtype=torch.int64, device="cuda")
        ext.prefix_set_trace(buf[2 * GRID:].data_ptr())
        fn()
        torch.cuda.synchronize()
        ext.prefix_set_trace(0)
        dec = buf[:2 * GRID].view(GRID, 2).flip(0).cpu().tolist()   # row b: (end, start) of block b
        items = [(w, row) for w, row in enumerate(buf[2 * GRID:].view(-1, 8).cpu().tolist()) if row[1] != 0]
        dec_by_block = [(s, e) for e, s in dec]
        n_dec = sum(1 for s, _ in dec_by_block if s != 0)
        t0 = min([it[1] for _, it in items] + [s for s, _ in dec_by_block if s != 0])
        us = lambda x: (x - t0) / 1e3
        last_item = {}
        for _, it in items:
            last_item[it[0]] = max(last_item.get(it[0], 0), us(it[5]))
        ends = sorted(last_item.values())
        dec_ends = sorted(us(e) for s, e in dec_by_block if s != 0) or [float("nan")]
        span = max(ends + dec_ends[-1:])
        loop = lambda it: (it[4] - it[3]) / 1e3
        # an item's block is w % grid (the persistent grid: one block an SM, n_dec blocks when each ran a decode)
        before, after = [], []
        for w, it in items:
            if n_dec:
                s, e = dec_by_block[w % n_dec]
                (after if it[1] >= e else before).append(loop(it))
        print(f"{sys.argv[1]},B{B} {Hq}/{Hkv} P{P} S{S},{mode},items {len(items)},span {span:.1f},"
              f"item loop med {med([loop(it) for _, it in items]):.2f},"
              f"beside a decode {len(before)} med {med(before):.2f},after it {len(after)} med {med(after):.2f},"
              f"prefix last end med/max {med(ends):.1f}/{ends[-1]:.1f},"
              f"decode blocks {n_dec} end min/med/max {dec_ends[0]:.1f}/{med(dec_ends):.1f}/{dec_ends[-1]:.1f}",
              flush=True)
