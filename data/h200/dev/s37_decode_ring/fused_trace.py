"""Session 37: where the fused kernel's time goes (prefix_decode=True), from the prefix kernel's trace hooks
(ext.prefix_set_trace: per prefix item its SM and %globaltimer stamps) plus, in this session's diagnostic build, the
decode warpgroup's start and end per block (written below the trace pointer). Per shape: the prefix alone and the
fused kernel: span, the prefix items' median loop time and when the last ends, when the decodes end.
    python3 fused_trace.py TAG >> trace.csv"""
import statistics
import sys

import torch

from tkprefix import tk_hydragen as tkh

ext = tkh._ext()
SHAPES = [(2048, 32, 8, 4096, 64), (4096, 8, 1, 8192, 64), (512, 8, 1, 1024, 64), (2048, 8, 1, 4096, 256),
          (2048, 32, 8, 4096, 256)]
GRID = 1024   # decode stamps below the pointer: 2 a block
r = lambda *sh: torch.randn(*sh, device="cuda", dtype=torch.bfloat16)
med = statistics.median
for B, Hq, Hkv, P, S in SHAPES:
    q, k, v, sk, sv = r(B, 1, Hq, 128), r(B, S, Hkv, 128), r(B, S, Hkv, 128), r(1, P, Hkv, 128), r(1, P, Hkv, 128)
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
        items = [row for row in buf[2 * GRID:].view(-1, 8).cpu().tolist() if row[1] != 0]
        dec = [(s, e) for e, s in dec if s != 0]
        t0 = min([it[1] for it in items] + [s for s, _ in dec])
        us = lambda x: (x - t0) / 1e3
        last_item = {}
        for it in items:
            last_item[it[0]] = max(last_item.get(it[0], 0), us(it[5]))
        ends = sorted(last_item.values())
        dec_ends = sorted(us(e) for _, e in dec) or [float("nan")]
        span = max(ends + dec_ends[-1:])
        print(f"{sys.argv[1]},B{B} {Hq}/{Hkv} P{P} S{S},{mode},items {len(items)},span {span:.1f},"
              f"item loop med {med([(it[4] - it[3]) / 1e3 for it in items]):.2f},"
              f"prefix last end med/max {med(ends):.1f}/{ends[-1]:.1f},"
              f"decode blocks {len(dec)} end min/med/max {dec_ends[0]:.1f}/{med(dec_ends):.1f}/{dec_ends[-1]:.1f}",
              flush=True)
