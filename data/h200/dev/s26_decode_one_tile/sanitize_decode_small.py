"""Decode-only small cases for compute-sanitizer racecheck (session 27, from a review; scripts/device/sanitize_small.py
also runs the prefix kernels on 700-1,400-block grids, and its racecheck timed out in session 25 after 69 s).

Usage (repository root, the branch's build):
  compute-sanitizer --tool racecheck --racecheck-report all --print-limit 20 python3 <this file>
Covers, with 2-6 blocks per launch: decode_one_tile_kernel (1, 10, 16 rows; D 64 / 128; bf16 / fp16; causal and
seq_len with an empty sequence; one split (final output), three splits (fp32 slots), fused prefix slots incl. -inf),
and the one-stage decode_kernel with Q through shared memory (24 and 48 rows: 2 and 4 row tiles). Prints the max
error of each against a float64 reference and NaN counts.
"""
import math

import torch

from tkprefix import reference, tk_hydragen as tkh


def ref(q, k, v, seq_len, pre=None):
    """float64 (o, lse) of the decode (tkprefix.reference), then merged with the fp32 slots pre = (o (n, ...), lse)."""
    o, lse = reference.decode_attention(q.double(), k.double(), v.double(), seq_len)
    for po, pl in zip(*pre) if pre is not None else ():
        o, lse = reference.merge_states(o, lse, po.double(), pl.double())
    return o, lse


torch.manual_seed(2)
ext, stream = tkh._ext(), tkh._stream
for dt in (torch.bfloat16, torch.float16):
    for D in (64, 128):
        if dt == torch.float16 and D == 64:
            continue
        for Nq, Hq in ((1, 1), (2, 5), (2, 8), (3, 8), (3, 16)):   # rows 1, 10, 16 (one-tile), 24, 48 (one-stage)
            B, Hkv = 2, 1
            for S, mode in ((37, "causal"), (37, "seq_len"), (130, "causal"), (130, "seq_len")):
                q = torch.randn(B, Nq, Hq, D, device="cuda", dtype=dt)
                k, v = (torch.randn(B, S, Hkv, D, device="cuda", dtype=dt) for _ in range(2))
                sl = None if mode == "causal" else torch.tensor([0, S - 20], device="cuda", dtype=torch.int32)
                n = math.ceil(S / 64)
                o_ref, lse_ref = ref(q, k, v, sl)
                ws_o = torch.full((n, B, Nq, Hq, D), float("nan"), device="cuda")
                ws_lse = torch.full((n, B, Nq, Hq), float("nan"), device="cuda")
                ext.decode_attention(q, k, v, sl, ws_o, ws_lse, n, 64, None, None, stream(q))
                o = torch.empty_like(q)
                lse = torch.empty(B, Nq, Hq, device="cuda")
                ext.merge_slots([(ws_o, ws_lse)], o, lse, stream(q))
                print(f"{dt} D{D} rows {Nq * Hq // Hkv} S{S} {mode} splits {n}: max err "
                      f"{(o.double() - o_ref).abs().max().item():.3e}, NaN slots {int(ws_o.isnan().sum())}", flush=True)
                if n == 1:   # the fused merge with two fp32 slots (one -inf row)
                    po = torch.randn(2, B, Nq, Hq, D, device="cuda")
                    pl = torch.randn(2, B, Nq, Hq, device="cuda") * 2
                    pl[1, 0] = -math.inf
                    o = torch.full_like(q, float("nan"))
                    lse = torch.full((B, Nq, Hq), float("nan"), device="cuda")
                    ext.decode_attention(q, k, v, sl, o, lse, 1, 64, po, pl, stream(q))
                    o_ref2, _ = ref(q, k, v, sl, (po, pl))
                    err = (o.double() - o_ref2).abs().max().item()
                    print(f"  fused: max err {err:.3e}, NaN {int(o.isnan().sum())}", flush=True)
torch.cuda.synchronize()
print("sanitize_decode_small done")
