"""TK Hydragen kernels (tkprefix.tk_hydragen) against a float64 reference on the same (rounded) inputs.

Shapes are odd on purpose: lengths that are not multiples of the 64/128-key tiles, batch 1, query-row counts that
leave partial 64-row tiles and 192-row blocks, GQA ratios 1/4/8, several prefix levels, empty unique parts
(seq_len 0), forced key splits. Outputs are NaN-poisoned before every run (passed in through `out=`), so an
unwritten row fails. Skipped with the reason where no H100 / TK is present.
"""
from __future__ import annotations

import math

import pytest
import torch

pytestmark = pytest.mark.gpu

DTYPES = [torch.bfloat16, torch.float16]
TOL = {torch.bfloat16: 1.2e-2, torch.float16: 4e-3}   # ||o - ref|| / ||ref||
LSE_ATOL = 2e-3


# ------------------------------------------------------------------------------------------------ reference
def ref_attention(q, keys, values, visible):
    """float64: q (B, Nq, Hq, D); keys/values (B, T, Hkv, D); visible (B, Nq, T) bool -> (o, lse)."""
    q, keys, values = q.double(), keys.double(), values.double()
    R = q.shape[2] // keys.shape[2]
    keys = keys.repeat_interleave(R, dim=2)
    values = values.repeat_interleave(R, dim=2)
    s = torch.einsum("bnhd,bthd->bnht", q, keys) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~visible[:, :, None, :], -math.inf)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse[..., None].clamp_min(-1e300))
    p = torch.nan_to_num(p, nan=0.0)
    o = torch.einsum("bnht,bthd->bnhd", p, values)
    o = torch.where(torch.isinf(lse)[..., None], torch.zeros_like(o), o)
    return o, lse


def visibility(B, Nq, S, seq_len, device):
    t = torch.arange(S, device=device)
    if seq_len is None:
        lim = (S - Nq + 1 + torch.arange(Nq, device=device))[None, :].expand(B, Nq)
    else:
        lim = seq_len.to(device).long()[:, None].expand(B, Nq)
    return t[None, None, :] < lim[..., None]


def rel_err(out, ref):
    return float((out.double() - ref).norm() / ref.norm().clamp_min(1e-30))


def check(o, lse, o_ref, lse_ref, dtype, what):
    assert not torch.isnan(o).any(), f"{what}: o has NaN (unwritten rows?)"
    assert not torch.isnan(lse).any(), f"{what}: lse has NaN (unwritten rows?)"
    err = rel_err(o, o_ref)
    assert err < TOL[dtype], f"{what}: rel err {err:.2e} >= {TOL[dtype]}"
    inf_ref = torch.isinf(lse_ref)
    assert torch.equal(torch.isinf(lse), inf_ref), f"{what}: -inf LSE rows differ"
    if (~inf_ref).any():
        d = (lse.double() - lse_ref)[~inf_ref].abs().max().item()
        assert d < LSE_ATOL, f"{what}: lse max abs err {d:.2e}"
    if inf_ref.any():
        assert (o[inf_ref] == 0).all(), f"{what}: empty rows must give o = 0"


def rnd(*shape, dtype, scale=1.0):
    return (torch.randn(*shape, device="cuda", dtype=torch.float32) * scale).to(dtype)


def poisoned(q):
    B, Nq, Hq, D = q.shape
    return (torch.full_like(q, float("nan")),
            torch.full((B, Nq, Hq), float("nan"), device=q.device, dtype=torch.float32))


# ------------------------------------------------------------------------------------------------ prefix
PREFIX_CASES = [  # (B, Bp, Nq, Hq, Hkv, P)
    (1, 1, 1, 8, 8, 1),
    (1, 1, 1, 32, 4, 77),
    (4, 2, 3, 8, 2, 200),
    (6, 1, 1, 32, 4, 777),
    (5, 5, 2, 4, 4, 129),
    (64, 1, 1, 32, 8, 1000),     # 256 stacked rows per kv-head: two 192-row blocks, the second partial
    (3, 1, 5, 8, 1, 300),        # GQA 8, several query positions
    (130, 1, 1, 8, 8, 64),
    (400, 2, 1, 4, 4, 131),
    (256, 1, 1, 32, 8, 1500),    # 1024 rows per kv-head: full 128/192-row blocks, 12 key tiles (ping-pong turns)
    # >= 256 rows, < 12 tiles, fewer of 176 keys: 176-key tiles at D 128, cw 2, one split (test_hydragen.py's rule)
    (97, 1, 3, 32, 8, 350),      # 1,164 rows: the last block's second warpgroup idle; 2 tiles, the last partial
    (130, 2, 1, 16, 4, 176),     # two prefix rows, one full 176-key tile
    (33, 1, 1, 64, 8, 1401),     # GQA 8, 8 tiles of 176 (11 of 128)
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("case", PREFIX_CASES, ids=lambda c: "B{}_Bp{}_N{}_H{}-{}_P{}".format(*c))
@pytest.mark.parametrize("splits", ["auto", "one", "max"])
@pytest.mark.parametrize("cw", [None, 2, "2pp", 3], ids=["cw_auto", "cw2", "cw2_pingpong", "cw3"])
def test_prefix_attention(requires_tk, dtype, D, case, splits, cw):
    from tkprefix import tk_hydragen as tkh

    B, Bp, Nq, Hq, Hkv, P = case
    q = rnd(B, Nq, Hq, D, dtype=dtype)
    k = rnd(Bp, P, Hkv, D, dtype=dtype, scale=1.5)
    v = rnd(Bp, P, Hkv, D, dtype=dtype)
    n = {"auto": None, "one": 1, "max": math.ceil(P / 128)}[splits]
    pp = cw == "2pp"
    o, lse = tkh.prefix_attention(q, k, v, n_splits=n, consumer_warpgroups=2 if pp else cw, pingpong=pp,
                                  out=poisoned(q))
    G = B // Bp
    o_ref, lse_ref = ref_attention(q, k.repeat_interleave(G, 0), v.repeat_interleave(G, 0),
                                   torch.ones(B, Nq, P, dtype=torch.bool, device="cuda"))
    check(o, lse, o_ref, lse_ref, dtype, f"prefix {case} splits={splits} cw={cw}")


def test_prefix_strided_cache_read_in_place(requires_tk):
    """K/V as views into a bigger cache (token stride != Hkv*D): read through the TMA strides, no copy."""
    from tkprefix import tk_hydragen as tkh

    dtype, D = torch.bfloat16, 128
    big_k = rnd(2, 500, 4, D, dtype=dtype)
    big_v = rnd(2, 500, 4, D, dtype=dtype)
    k, v = big_k[:, 17:450, 1:3], big_v[:, 17:450, 1:3]     # (2, 433, 2, D), non-contiguous
    q = rnd(6, 1, 8, D, dtype=dtype)
    o, lse = tkh.prefix_attention(q, k, v, out=poisoned(q))
    o_ref, lse_ref = ref_attention(q, k.repeat_interleave(3, 0), v.repeat_interleave(3, 0),
                                   torch.ones(6, 1, 433, dtype=torch.bool, device="cuda"))
    check(o, lse, o_ref, lse_ref, dtype, "strided prefix")
    # the same cache read with 176-key tiles, and q a strided view too (every other q-head of a wider tensor)
    q = rnd(256, 1, 16, D, dtype=dtype)[:, :, ::2]                # (256, 1, 8, D): 512 stacked rows per kv-head
    assert tkh._prefix_schedule(q, k, 2, False, 1, 132)[0] == 4
    o, lse = tkh.prefix_attention(q, k, v, n_splits=1, consumer_warpgroups=2, out=poisoned(q))
    o_ref, lse_ref = ref_attention(q, k.repeat_interleave(128, 0), v.repeat_interleave(128, 0),
                                   torch.ones(256, 1, 433, dtype=torch.bool, device="cuda"))
    check(o, lse, o_ref, lse_ref, dtype, "strided prefix, 176-key tiles")


def test_outputs_must_be_16_byte_aligned(requires_tk):
    """A contiguous `out` view at an odd element offset is refused by name (the kernels store 16-byte segments),
    for the prefix, the decode and the whole step; an aligned view at an offset is fine."""
    from tkprefix import tk_hydragen as tkh

    q = rnd(4, 1, 8, 64, dtype=torch.bfloat16)
    k = rnd(1, 300, 2, 64, dtype=torch.bfloat16)
    kd = rnd(4, 50, 2, 64, dtype=torch.bfloat16)
    store = torch.full((q.numel() + 8,), float("nan"), device="cuda", dtype=q.dtype)
    lse = torch.empty(4, 1, 8, device="cuda")
    odd, even = store[1:][:q.numel()].view(q.shape), store[8:][:q.numel()].view(q.shape)
    with pytest.raises(ValueError, match=r"out\[0\] must start at a 16-byte aligned address"):
        tkh.prefix_attention(q, k, k, out=(odd, lse))
    with pytest.raises(ValueError, match=r"out\[0\] must start at a 16-byte aligned address"):
        tkh.decode_attention(q, kd, kd, out=(odd, lse))
    with pytest.raises(ValueError, match="out: must be a contiguous .* 16-byte aligned address"):
        tkh.hydragen_attention_nopad(q, kd, kd, [k], [k], out=odd)
    o, lse = tkh.prefix_attention(q, k, k, out=(even, lse))
    o_ref, lse_ref = ref_attention(q, k.expand(4, -1, -1, -1), k.expand(4, -1, -1, -1),
                                   torch.ones(4, 1, 300, dtype=torch.bool, device="cuda"))
    check(o, lse, o_ref, lse_ref, torch.bfloat16, "aligned out view")


def test_prefix_empty(requires_tk):
    from tkprefix import tk_hydragen as tkh

    q = rnd(3, 1, 8, 64, dtype=torch.bfloat16)
    k = rnd(1, 0, 8, 64, dtype=torch.bfloat16)
    o, lse = tkh.prefix_attention(q, k, k, out=poisoned(q))
    assert (o == 0).all() and torch.isneginf(lse).all()


# ------------------------------------------------------------------------------------------------ decode
DECODE_CASES = [  # (B, Nq, Hq, Hkv, S)
    (1, 1, 8, 8, 1),
    (3, 1, 32, 4, 100),
    (4, 2, 8, 8, 64),
    (5, 1, 8, 1, 1000),
    (2, 4, 32, 8, 200),          # 16 rows per (b, kv-head)
    (2, 3, 32, 4, 130),          # 24 rows: 8 rows per warp
    (1, 5, 64, 8, 77),           # 40 rows: two row groups
    (8, 1, 16, 2, 4097),
    (700, 1, 8, 2, 70),          # 1,400 blocks (more than resident), 1-2 tiles each, some empty (seq_len 0)
    (150, 3, 64, 2, 100),        # 96 rows per kv-head: two row groups, 600 blocks
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("case", DECODE_CASES, ids=lambda c: "B{}_N{}_H{}-{}_S{}".format(*c))
@pytest.mark.parametrize("mode", ["causal", "seq_len"])
@pytest.mark.parametrize("splits", ["auto", "one", "max"])
def test_decode_attention(requires_tk, dtype, D, case, mode, splits):
    from tkprefix import tk_hydragen as tkh

    B, Nq, Hq, Hkv, S = case
    q = rnd(B, Nq, Hq, D, dtype=dtype)
    k = rnd(B, S, Hkv, D, dtype=dtype, scale=1.5)
    v = rnd(B, S, Hkv, D, dtype=dtype)
    seq_len = None
    if mode == "seq_len":
        seq_len = torch.randint(0, S + 1, (B,), device="cuda", dtype=torch.int32)
        seq_len[0] = 0 if B > 1 else S           # an empty sequence whenever there are two
        if B > 2:
            seq_len[1] = S
    n = {"auto": None, "one": 1, "max": max(1, math.ceil(S / 64))}[splits]
    o, lse = tkh.decode_attention(q, k, v, seq_len, n_splits=n, out=poisoned(q))
    o_ref, lse_ref = ref_attention(q, k, v, visibility(B, Nq, S, seq_len, "cuda"))
    check(o, lse, o_ref, lse_ref, dtype, f"decode {case} {mode} splits={splits}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("G", [1, 2, 4, 8, 16, 64])
@pytest.mark.parametrize("Nq", [1, 3])
@pytest.mark.parametrize("mode", ["causal", "seq_len"])
def test_decode_gqa_groups_strided(requires_tk, dtype, D, G, Nq, mode):
    """G q-heads per kv-head (one pass over K/V serves the G*Nq rows), q/k/v read in place from strided views."""
    from tkprefix import tk_hydragen as tkh

    B, Hkv, S = 3, 2, 333
    Hq = G * Hkv
    q = rnd(B, Nq, 2 * Hq, D, dtype=dtype)[:, :, 1::2]                      # q-head stride 2*D
    k = rnd(B, S + 9, Hkv + 1, D, dtype=dtype, scale=1.5)[:, 5:5 + S, :Hkv]  # a window of a larger cache
    v = rnd(B, S + 9, Hkv + 1, D, dtype=dtype)[:, 2:2 + S, 1:]
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    seq_len = None
    if mode == "seq_len":
        seq_len = torch.tensor([0, S, 131], device="cuda", dtype=torch.int32)
    for n in (None, 1):
        o, lse = tkh.decode_attention(q, k, v, seq_len, n_splits=n, out=poisoned(q))
        o_ref, lse_ref = ref_attention(q, k, v, visibility(B, Nq, S, seq_len, "cuda"))
        check(o, lse, o_ref, lse_ref, dtype, f"decode G{G} Nq{Nq} {mode} splits={n}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("Nq,G", [(1, 1), (1, 3), (3, 1), (2, 5), (3, 4), (1, 16), (4, 4), (16, 1)])
@pytest.mark.parametrize("S", [1, 37, 64, 130])
@pytest.mark.parametrize("mode", ["causal", "seq_len"])
def test_decode_one_tile_rows(requires_tk, dtype, D, Nq, G, S, mode):
    """Splits of one 64-key tile at <= 16 rows a (sequence, kv-head) (decode_one_tile_kernel: keys split across the
    warps for S, features for O): every row count's pattern, causal limits inside the tile, empty and partial
    sequences, one split (final output) and several (fp32 partials merged), from a strided q view."""
    from tkprefix import tk_hydragen as tkh

    B, Hkv = 3, 2
    Hq = G * Hkv
    q = rnd(B, Nq, Hq + 1, D, dtype=dtype)[:, :, 1:]          # a strided view: token stride (Hq + 1) * D
    k, v = rnd(B, S, Hkv, D, dtype=dtype, scale=1.5), rnd(B, S, Hkv, D, dtype=dtype)
    seq_len = None
    if mode == "seq_len":
        seq_len = torch.tensor([0, S, max(1, S - 20)], device="cuda", dtype=torch.int32)
    n = math.ceil(S / 64)   # 64-key splits: one (the final output) up to S 64, else fp32 partials merged
    o, lse = tkh.decode_attention(q, k, v, seq_len, n_splits=n, out=poisoned(q))
    o_ref, lse_ref = ref_attention(q, k, v, visibility(B, Nq, S, seq_len, "cuda"))
    what = f"one tile Nq{Nq} G{G} S{S} {mode} splits={n}"
    check(o, lse, o_ref, lse_ref, dtype, what)
    # per row: one wrong row (or one warp's / lane's columns of it) must not hide in the norm over all 6-96 rows
    # (a lane-level emulation of the kernel gives <= 3e-3 (bf16) / 4e-4 (fp16) on the worst row)
    fin = ~torch.isinf(lse_ref)
    row_err = (o.double() - o_ref).norm(dim=-1)[fin] / o_ref.norm(dim=-1)[fin].clamp_min(1e-30)
    assert row_err.max().item() < TOL[dtype], f"{what}: worst row rel err {row_err.max().item():.2e}"
    if n > 1:   # the fp32 partial slots themselves, NaN-poisoned (decode_attention's workspace is torch.empty)
        ws_o = torch.full((n, B, Nq, Hq, D), float("nan"), device="cuda")
        ws_lse = torch.full((n, B, Nq, Hq), float("nan"), device="cuda")
        tkh._ext().decode_attention(q, k, v, seq_len, ws_o, ws_lse, n, 64, None, None, tkh._stream(q))
        assert not ws_o.isnan().any() and not ws_lse.isnan().any(), f"{what}: unwritten partial slot"


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("Nq,G", [(1, 16), (2, 5), (16, 1)])
@pytest.mark.parametrize("mode", ["causal", "seq_len"])
def test_decode_one_tile_fused_prefix(requires_tk, dtype, D, Nq, G, mode):
    """decode_one_tile_kernel's fused merge of the prefix slots (write_row's slot loop over the lane's column groups)
    at 9-16 rows (the lanes' second rows, gid + 8) and Nq > 1: the nopad cases reach it only at 1-4 rows, Nq 1."""
    from tkprefix import tk_hydragen as tkh

    B, Hkv, S, P = 3, 2, 37, 200
    Hq = G * Hkv
    q = rnd(B, Nq, Hq, D, dtype=dtype)
    k, v = rnd(B, S, Hkv, D, dtype=dtype, scale=1.5), rnd(B, S, Hkv, D, dtype=dtype)
    pk, pv = rnd(1, P, Hkv, D, dtype=dtype, scale=1.3), rnd(1, P, Hkv, D, dtype=dtype)
    seq_len = None if mode == "causal" else torch.tensor([0, S, S - 20], device="cuda", dtype=torch.int32)
    o, lse = tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], seq_len, return_lse=True, out=poisoned(q)[0],
                                          overlap=False)   # one decode split, no overlap: the fused merge
    vis = torch.cat([torch.ones(B, Nq, P, dtype=torch.bool, device="cuda"), visibility(B, Nq, S, seq_len, "cuda")], -1)
    o_ref, lse_ref = ref_attention(q, torch.cat([pk.expand(B, -1, -1, -1), k], 1),
                                   torch.cat([pv.expand(B, -1, -1, -1), v], 1), vis)
    check(o, lse, o_ref, lse_ref, dtype, f"one tile + prefix Nq{Nq} G{G} {mode}")


def test_decode_is_deterministic(requires_tk):
    """More blocks than fit at once, ragged and empty sequences: bitwise the same result on every run (a moving
    result is a race)."""
    from tkprefix import tk_hydragen as tkh

    q = rnd(900, 1, 8, 128, dtype=torch.bfloat16)
    k, v = rnd(900, 150, 2, 128, dtype=torch.bfloat16), rnd(900, 150, 2, 128, dtype=torch.bfloat16)
    seq_len = torch.randint(0, 151, (900,), device="cuda", dtype=torch.int32)
    seq_len[::5] = 0
    first = tkh.decode_attention(q, k, v, seq_len, out=poisoned(q))
    for _ in range(4):
        again = tkh.decode_attention(q, k, v, seq_len, out=poisoned(q))
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


def test_decode_empty_cache(requires_tk):
    from tkprefix import tk_hydragen as tkh

    q = rnd(3, 1, 8, 128, dtype=torch.bfloat16)
    k = rnd(3, 0, 8, 128, dtype=torch.bfloat16)
    o, lse = tkh.decode_attention(q, k, k, torch.zeros(3, dtype=torch.int32, device="cuda"), out=poisoned(q))
    assert (o == 0).all() and torch.isneginf(lse).all()


@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("S", [50, 64, 300])
def test_decode_ignores_the_cache_past_seq_len(requires_tk, D, S):
    """Entries past a sequence's length may hold anything (an unwritten cache): NaN and inf there must not reach the
    result, on one-tile splits (the one-stage kernel) and on longer ones."""
    from tkprefix import tk_hydragen as tkh

    B, Hq, Hkv, dt = 5, 16, 4, torch.bfloat16
    q = rnd(B, 1, Hq, D, dtype=dt)
    k, v = rnd(B, S, Hkv, D, dtype=dt, scale=1.5), rnd(B, S, Hkv, D, dtype=dt)
    seq_len = torch.tensor([0, 1, S // 2 + 1, S - 1, S], device="cuda", dtype=torch.int32)
    past = torch.arange(S, device="cuda")[None, :] >= seq_len[:, None].long()   # (B, S)
    k_bad, v_bad = k.clone(), v.clone()
    k_bad[past] = float("nan")
    v_bad[past] = float("inf")
    v_bad[past.nonzero()[::2].unbind(1)] = float("nan")
    o_ref, lse_ref = ref_attention(q, k, v, visibility(B, 1, S, seq_len, "cuda"))
    for n in (None, 1, math.ceil(S / 64)):
        o, lse = tkh.decode_attention(q, k_bad, v_bad, seq_len, n_splits=n, out=poisoned(q))
        check(o, lse, o_ref, lse_ref, dt, f"decode S{S} splits={n}, NaN/inf past seq_len")


# ------------------------------------------------------------------------------------------------ merge
@pytest.mark.parametrize("dtype", DTYPES + [torch.float32], ids=["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("D", [64, 128])
def test_merge_states(requires_tk, dtype, D):
    from tkprefix import tk_hydragen as tkh

    shape = (5, 3, 7)
    o_a, o_b = rnd(*shape, D, dtype=dtype), rnd(*shape, D, dtype=dtype)
    lse_a = torch.randn(shape, device="cuda") * 3
    lse_b = torch.randn(shape, device="cuda") * 3
    lse_a[0, 0] = -math.inf                      # one side empty
    lse_b[1, 1] = -math.inf
    lse_a[2, 2] = lse_b[2, 2] = -math.inf        # both empty
    o, lse = tkh.merge_states(o_a, lse_a, o_b, lse_b)
    lse_ref = torch.logaddexp(lse_a.double(), lse_b.double())
    wa = torch.nan_to_num(torch.exp(lse_a.double() - lse_ref))
    wb = torch.nan_to_num(torch.exp(lse_b.double() - lse_ref))
    o_ref = o_a.double() * wa[..., None] + o_b.double() * wb[..., None]
    check(o, lse, o_ref, lse_ref, torch.bfloat16 if dtype == torch.float32 else dtype, "merge")


# ------------------------------------------------------------------------------------------------ full Hydragen
NOPAD_CASES = [  # (B, Nq, Hq, Hkv, levels [(Bp, P)], S, mode)
    (4, 1, 8, 2, [(1, 300)], 50, "seq_len"),
    (8, 1, 32, 8, [(1, 1000), (4, 130)], 64, "causal"),
    (6, 2, 16, 16, [(1, 77), (2, 200), (6, 65)], 90, "seq_len"),
    (3, 1, 8, 8, [], 129, "causal"),
    (5, 1, 8, 1, [(1, 513)], 0, "seq_len"),      # empty unique part
    (4, 1, 8, 8, [(1, 0), (2, 33)], 10, "seq_len"),   # an empty level
    (1, 1, 32, 32, [(1, 4096)], 512, "seq_len"),
    (16, 1, 8, 1, [(1, 1000)], 512, "seq_len"),      # c3's 8/1 heads: 8 rows per kv-head
    (3, 3, 32, 2, [(1, 200)], 100, "causal"),        # 48 rows per kv-head
    (600, 1, 8, 2, [(1, 100)], 64, "seq_len"),       # 1,200 decode blocks, the prefix merged in
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("case", NOPAD_CASES, ids=lambda c: f"B{c[0]}_N{c[1]}_H{c[2]}-{c[3]}_L{len(c[4])}_S{c[5]}")
@pytest.mark.parametrize("path", ["fused", "merge_kernel", "decode_split", "overlap", "corun"])
def test_hydragen_attention_nopad(requires_tk, dtype, D, case, path):
    import tkprefix
    from tkprefix import tk_hydragen as tkh

    B, Nq, Hq, Hkv, levels, S, mode = case
    q = rnd(B, Nq, Hq, D, dtype=dtype)
    k, v = rnd(B, S, Hkv, D, dtype=dtype), rnd(B, S, Hkv, D, dtype=dtype)
    sks = [rnd(bp, p, Hkv, D, dtype=dtype, scale=1.3) for bp, p in levels]
    svs = [rnd(bp, p, Hkv, D, dtype=dtype) for bp, p in levels]
    seq_len = None
    if mode == "seq_len":
        seq_len = torch.randint(0, S + 1, (B,), device="cuda", dtype=torch.int32)
        if B > 1:
            seq_len[-1] = 0
    out = torch.full_like(q, float("nan"))
    kw = {"fused": {"overlap": False}, "merge_kernel": {"fuse_merge": False, "overlap": False},
          "decode_split": {"decode_n_splits": max(1, math.ceil(S / 64)), "overlap": False},
          "overlap": {"overlap": True}, "corun": {"prefix_sms": 3}}[path]   # corun: the prefix's grid on 3 SMs
    o, lse = tkh.hydragen_attention_nopad(q, k, v, sks, svs, seq_len, return_lse=True, out=out, **kw)
    assert o.data_ptr() == out.data_ptr()
    keys = torch.cat([sk.repeat_interleave(B // sk.shape[0], 0) for sk in sks] + [k], dim=1)
    vals = torch.cat([sv.repeat_interleave(B // sv.shape[0], 0) for sv in svs] + [v], dim=1)
    P = sum(p for _, p in levels)
    vis = torch.cat([torch.ones(B, Nq, P, dtype=torch.bool, device="cuda"), visibility(B, Nq, S, seq_len, "cuda")], -1)
    o_ref, lse_ref = ref_attention(q, keys, vals, vis)
    check(o, lse, o_ref, lse_ref, dtype, f"nopad {case}")
    # the public dispatch gives the same result
    o2 = tkprefix.hydragen_attention_nopad(q, k, v, sks, svs, seq_len, backend="tk")
    assert rel_err(o2, o_ref) < TOL[dtype]


PREFIX_DECODE_CASES = [  # (B, Nq, Hq, Hkv, Bp, P, S, mode): the decode inside the prefix kernel (<= 16 rows a kv-head)
    (1, 1, 8, 1, 1, 300, 50, "seq_len"),       # batch 1, 8 rows a kv-head
    (4, 1, 32, 8, 1, 1000, 64, "causal"),      # c3's 32/8 heads
    (7, 2, 16, 2, 7, 129, 130, "seq_len"),     # Nq 2 x 8 = 16 rows, a prefix row a sequence, 3 key tiles
    (5, 3, 15, 3, 1, 77, 200, "causal"),       # 15 rows (R 5), odd sizes
    (600, 1, 8, 2, 1, 100, 64, "seq_len"),     # 1,200 decode units: more than one a block
    (64, 1, 32, 32, 2, 2000, 513, "seq_len"),  # one row a kv-head, 9 key tiles, two prefix rows
    (256, 1, 8, 1, 1, 4096, 1, "causal"),      # one key: 256 units beside 16 row blocks x 32 tiles
    (33, 1, 64, 4, 1, 256, 37, "seq_len"),     # 16 rows a kv-head
    (300, 2, 16, 2, 1, 64, 150, "seq_len"),    # 600 units of 16 rows, 0-3 tiles each: ~4.5 a block, new Q rows every unit
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("case", PREFIX_DECODE_CASES, ids=lambda c: "B{}_N{}_H{}-{}_Bp{}_P{}_S{}_{}".format(*c))
@pytest.mark.parametrize("layout", ["contiguous", "strided_splits"])
def test_prefix_decode(requires_tk, poison_allocator, dtype, case, layout):
    """prefix_decode=True against float64, outputs NaN-poisoned (o, and the allocator's free memory, where the fp32
    slots come from); strided_splits: q, k, v, the prefix as views of wider tensors (read in place) and the prefix key
    range split into its most slots; run twice, bit-identical."""
    from tkprefix import tk_hydragen as tkh

    B, Nq, Hq, Hkv, Bp, P, S, mode = case
    D = 128
    wide = 64 if layout == "strided_splits" else 0   # extra features: row strides of D + 64 elements
    q = rnd(B, Nq, Hq, D + wide, dtype=dtype)[..., :D]
    k, v = rnd(B, S, Hkv, D + wide, dtype=dtype)[..., :D], rnd(B, S, Hkv, D + wide, dtype=dtype)[..., :D]
    sk = rnd(Bp, P, Hkv, D + wide, dtype=dtype, scale=1.3)[..., :D]
    sv = rnd(Bp, P, Hkv, D + wide, dtype=dtype)[..., :D]
    seq_len = None
    if mode == "seq_len":
        seq_len = torch.randint(0, S + 1, (B,), device="cuda", dtype=torch.int32)
        if B > 1:
            seq_len[-1] = 0
    splits = math.ceil(P / 128) if layout == "strided_splits" else None
    outs = []
    for _ in range(2):
        out = torch.full((B, Nq, Hq, D), float("nan"), device="cuda", dtype=dtype)
        poison_allocator()          # the large pool (slots over 1 MB)
        poison_allocator(1 << 20)   # the small pool
        o, lse = tkh.hydragen_attention_nopad(q, k, v, [sk], [sv], seq_len, return_lse=True, out=out,
                                              prefix_n_splits=splits, prefix_decode=True)
        outs.append((o.clone(), lse.clone()))
    keys = torch.cat([sk.repeat_interleave(B // Bp, 0), k], dim=1)
    vals = torch.cat([sv.repeat_interleave(B // Bp, 0), v], dim=1)
    vis = torch.cat([torch.ones(B, Nq, P, dtype=torch.bool, device="cuda"), visibility(B, Nq, S, seq_len, "cuda")], -1)
    o_ref, lse_ref = ref_attention(q, keys, vals, vis)
    check(outs[0][0], outs[0][1], o_ref, lse_ref, dtype, f"prefix_decode {case} {layout}")
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1]), "two runs differ: a race?"


@pytest.mark.parametrize("S", [64, 150])
def test_prefix_decode_ignores_the_cache_past_seq_len(requires_tk, S):
    """The decode inside the prefix kernel, as test_decode_ignores_the_cache_past_seq_len: NaN and inf in the unique
    cache past each sequence's length (lengths inside a 16-key chunk, on a tile edge, 0 and S) must not reach the
    result; 4 rows a kv-head (c3's 32/8)."""
    from tkprefix import tk_hydragen as tkh

    B, Hq, Hkv, P, D, dt = 6, 32, 8, 300, 128, torch.bfloat16
    q = rnd(B, 1, Hq, D, dtype=dt)
    k, v = rnd(B, S, Hkv, D, dtype=dt, scale=1.5), rnd(B, S, Hkv, D, dtype=dt)
    sk, sv = rnd(1, P, Hkv, D, dtype=dt), rnd(1, P, Hkv, D, dtype=dt)
    seq_len = torch.tensor([0, 1, 37, 64, S - 1, S], device="cuda", dtype=torch.int32)
    past = torch.arange(S, device="cuda")[None, :] >= seq_len[:, None].long()   # (B, S)
    k_bad, v_bad = k.clone(), v.clone()
    k_bad[past] = float("nan")
    v_bad[past] = float("inf")
    v_bad[past.nonzero()[::2].unbind(1)] = float("nan")
    keys, vals = torch.cat([sk.expand(B, -1, -1, -1), k], 1), torch.cat([sv.expand(B, -1, -1, -1), v], 1)
    vis = torch.cat([torch.ones(B, 1, P, dtype=torch.bool, device="cuda"), visibility(B, 1, S, seq_len, "cuda")], -1)
    o_ref, lse_ref = ref_attention(q, keys, vals, vis)
    o, lse = tkh.hydragen_attention_nopad(q, k_bad, v_bad, [sk], [sv], seq_len, return_lse=True,
                                          out=poisoned(q)[0], prefix_decode=True)
    check(o, lse, o_ref, lse_ref, dt, f"prefix_decode S{S}, NaN/inf past seq_len")


def test_prefix_decode_limits_name_the_argument(requires_tk):
    from tkprefix import tk_hydragen as tkh

    bf = torch.bfloat16
    q, k, sk = rnd(4, 1, 8, 128, dtype=bf), rnd(4, 20, 2, 128, dtype=bf), rnd(1, 100, 2, 128, dtype=bf)
    bad = [
        (dict(q=rnd(4, 1, 8, 64, dtype=bf), k=rnd(4, 20, 2, 64, dtype=bf), sk=rnd(1, 100, 2, 64, dtype=bf)),
         "head_dim 128"),
        (dict(q=rnd(4, 1, 64, 128, dtype=bf)), "<= 16 query rows"),          # 32 rows a kv-head
        (dict(q=rnd(4, 3, 16, 128, dtype=bf)), "<= 16 query rows"),          # Nq 3 x 8 = 24 rows
        (dict(k=rnd(4, 0, 2, 128, dtype=bf)), "one non-empty shared level"),
        (dict(levels=2), "one non-empty shared level"),
        (dict(overlap=True), "do not apply"),
        (dict(prefix_sms=4), "do not apply"),
        (dict(decode_n_splits=2), "do not apply"),
    ]
    for change, words in bad:
        qq, kk, ss = change.pop("q", q), change.pop("k", k), change.pop("sk", sk)
        levels = [ss] * change.pop("levels", 1)
        with pytest.raises(ValueError, match=f"prefix_decode: .*{words}"):
            tkh.hydragen_attention_nopad(qq, kk, kk, levels, levels, prefix_decode=True, **change)


AUTO_CASES = [  # (B, Nq, Hq, Hkv, levels [(Bp, P)], S, seq_len given): where nothing is shared auto may run SDPA
    (16, 1, 32, 32, [], 512, False),     # c1 P0 S512: SDPA by the rule
    (1, 1, 8, 8, [(1, 0)], 1001, False),  # batch 1, an empty level, odd length: SDPA
    (5, 1, 8, 8, [], 255, False),         # below the rule's keys: TK
    (4, 1, 32, 8, [], 777, False),        # GQA 4, 32 sequences x kv-heads: TK
    (17, 1, 32, 8, [], 777, False),       # GQA 4, 136 sequences x kv-heads: SDPA
    (3, 1, 64, 1, [], 300, False),        # GQA 64 (not measured): TK
    (4, 1, 8, 8, [], 600, True),          # seq_len given: TK (SDPA would need a mask)
    (3, 2, 8, 8, [], 600, False),         # Nq 2: TK
    (4, 1, 8, 8, [(1, 70)], 600, False),  # something shared: TK
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("case", AUTO_CASES, ids=lambda c: f"B{c[0]}_N{c[1]}_H{c[2]}-{c[3]}_L{len(c[4])}_S{c[5]}"
                                                            f"{'_seqlen' if c[6] else ''}")
def test_auto_without_sharing_follows_the_measured_rule(requires_tk, monkeypatch, dtype, case):
    """backend="auto" runs PyTorch SDPA exactly where plain_decode_by_sdpa says, TK elsewhere; both match the float64
    reference on fresh inputs with strided k/v views (every other token of a wider cache)."""
    import tkprefix
    from tkprefix import hydragen

    B, Nq, Hq, Hkv, levels, S, given = case
    D = 128
    q = rnd(B, Nq, Hq, D, dtype=dtype)
    k, v = rnd(B, 2 * S, Hkv, D, dtype=dtype)[:, ::2], rnd(B, 2 * S, Hkv, D, dtype=dtype)[:, ::2]
    sks = [rnd(bp, p, Hkv, D, dtype=dtype) for bp, p in levels]
    svs = [rnd(bp, p, Hkv, D, dtype=dtype) for bp, p in levels]
    seq_len = torch.randint(0, S + 1, (B,), device="cuda", dtype=torch.int32) if given else None
    calls = []
    original = hydragen.sdpa_decode
    monkeypatch.setattr(hydragen, "sdpa_decode", lambda *a: calls.append(1) or original(*a))
    o = tkprefix.hydragen_attention_nopad(q, k, v, sks, svs, seq_len, backend="auto")
    want = hydragen.plain_decode_by_sdpa(Nq, Hq, Hkv, S, sum(p for _, p in levels), given, B)
    assert bool(calls) == want, f"{case}: SDPA ran {bool(calls)}, the rule says {want}"
    keys = torch.cat([sk.repeat_interleave(B // sk.shape[0], 0) for sk in sks] + [k], dim=1)
    vals = torch.cat([sv.repeat_interleave(B // sv.shape[0], 0) for sv in svs] + [v], dim=1)
    P = sum(p for _, p in levels)
    vis = torch.cat([torch.ones(B, Nq, P, dtype=torch.bool, device="cuda"), visibility(B, Nq, S, seq_len, "cuda")], -1)
    o_ref, _ = ref_attention(q, keys, vals, vis)
    assert o.shape == q.shape and not torch.isnan(o).any()
    assert rel_err(o, o_ref) < TOL[dtype], f"{case}: rel err {rel_err(o, o_ref):.2e}"


@pytest.mark.parametrize("overlap", [False, True, 5], ids=["one_stream", "overlap", "corun_5_sms"])
def test_cuda_graph_capture_of_a_decode_step(requires_tk, overlap):
    """The whole step (prefix + decode + merge) captured once and replayed on new inputs copied in place."""
    overlap, prefix_sms = (True, overlap) if overlap not in (False, True) else (overlap, None)
    from tkprefix import tk_hydragen as tkh

    dtype, D, B, Hq, Hkv = torch.bfloat16, 128, 16, 32, 8
    q = rnd(B, 1, Hq, D, dtype=dtype)
    pk, pv = rnd(1, 1500, Hkv, D, dtype=dtype), rnd(1, 1500, Hkv, D, dtype=dtype)
    k, v = rnd(B, 300, Hkv, D, dtype=dtype), rnd(B, 300, Hkv, D, dtype=dtype)
    seq_len = torch.randint(1, 301, (B,), device="cuda", dtype=torch.int32)
    out = torch.empty_like(q)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], seq_len, out=out)   # warm-up outside the graph
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], seq_len, out=out, overlap=overlap, prefix_sms=prefix_sms)
    for _ in range(2):
        q.copy_(rnd(B, 1, Hq, D, dtype=dtype))
        k.copy_(rnd(B, 300, Hkv, D, dtype=dtype))
        seq_len.copy_(torch.randint(0, 301, (B,), device="cuda", dtype=torch.int32))
        out.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        keys = torch.cat([pk.expand(B, -1, -1, -1), k], 1)
        vals = torch.cat([pv.expand(B, -1, -1, -1), v], 1)
        vis = torch.cat([torch.ones(B, 1, 1500, dtype=torch.bool, device="cuda"),
                         visibility(B, 1, 300, seq_len, "cuda")], -1)
        o_ref, _ = ref_attention(q, keys, vals, vis)
        assert not torch.isnan(out).any()
        assert rel_err(out, o_ref) < TOL[dtype]


@pytest.mark.parametrize("path", ["fused", "split", "prefix_split"])
def test_pdl_launches_wait_for_the_kernel_before(requires_tk, path):
    """Programmatic dependent launch (tk_hydragen.PDL): a decode or merge scheduled before the prefix kernel ends must
    not read its slots (or write) before that kernel is done. A slow prefix (32 blocks of 32 tiles, a block per item,
    so 100 SMs stay free) before a short decode (fused: decode_kernel, 16 blocks of two tiles; split:
    decode_one_tile_kernel, 32 blocks of one tile), its slots NaN-filled just before: a read before
    griddepcontrol.wait gives NaN or a wrong row. Fresh inputs every trial (a moving error is a race). The other
    decode_kernel builds (17-64 rows, one stage) wait at the same source line."""
    from tkprefix import tk_hydragen as tkh

    ext, dtype, D, B, Hq, Hkv, P, S = tkh._ext(), torch.bfloat16, 128, 2, 8, 8, 16384, 128
    n_pre = 4
    for trial in range(5):
        q = rnd(B, 1, Hq, D, dtype=dtype)
        pk, pv = rnd(1, P, Hkv, D, dtype=dtype, scale=1.3), rnd(1, P, Hkv, D, dtype=dtype)
        k, v = rnd(B, S, Hkv, D, dtype=dtype, scale=1.3), rnd(B, S, Hkv, D, dtype=dtype)
        ws_o = torch.full((n_pre + 2, B, 1, Hq, D), float("nan"), device="cuda")
        ws_lse = torch.full((n_pre + 2, B, 1, Hq), float("nan"), device="cuda")
        o, lse = poisoned(q)
        stream = tkh._stream(q)
        ext.prefix_attention(q, pk, pv, ws_o[:n_pre], ws_lse[:n_pre], n_pre, 2, 0, 0, stream)
        if path == "fused":     # the decode merges the prefix slots as it writes o
            ext.decode_attention(q, k, v, None, o, lse, 1, S, ws_o[:n_pre], ws_lse[:n_pre], stream, pdl=True)
        elif path == "split":   # two decode splits into slots, then one merge of all six
            ext.decode_attention(q, k, v, None, ws_o[n_pre:], ws_lse[n_pre:], 2, 64, None, None, stream, pdl=True)
            ext.merge_slots([(ws_o, ws_lse)], o, lse, stream, pdl=True)
        else:                   # the prefix alone, its splits merged
            ext.merge_slots([(ws_o[:n_pre], ws_lse[:n_pre])], o, lse, stream, pdl=True)
        keys = pk.expand(B, -1, -1, -1) if path == "prefix_split" else torch.cat([pk.expand(B, -1, -1, -1), k], 1)
        vals = pv.expand(B, -1, -1, -1) if path == "prefix_split" else torch.cat([pv.expand(B, -1, -1, -1), v], 1)
        o_ref, lse_ref = ref_attention(q, keys, vals, torch.ones(B, 1, keys.shape[1], dtype=torch.bool, device="cuda"))
        check(o, lse, o_ref, lse_ref, dtype, f"PDL {path}, trial {trial}")


def test_corun_at_the_rules_pick_for_a_compute_bound_prefix_beside_a_large_decode(requires_tk):
    """A c3-like step (32/8 heads, 512 sequences, odd prefix, seq_len given): the prefix grid is compute-bound and the
    decode large, so `_corun_sms` co-runs them (the prefix on a share of the SMs, on a side stream)."""
    from tkprefix import tk_hydragen as tkh

    dtype, D, B, Hq, Hkv, P, S = torch.bfloat16, 128, 512, 32, 8, 301, 256
    q = rnd(B, 1, Hq, D, dtype=dtype)
    pk, pv = rnd(1, P, Hkv, D, dtype=dtype, scale=1.3), rnd(1, P, Hkv, D, dtype=dtype)
    k, v = rnd(B, S, Hkv, D, dtype=dtype), rnd(B, S, Hkv, D, dtype=dtype)
    n_sm = tkh._num_sms(q.device.index or 0)
    n_p = tkh._corun_sms(q, k, [(pk, pv)], n_sm)
    assert 0 < n_p < n_sm, "the shape no longer takes the co-run path"
    seq_len = torch.randint(0, S + 1, (B,), device="cuda", dtype=torch.int32)
    o, lse = tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], seq_len, return_lse=True, out=poisoned(q)[0],
                                          prefix_sms=n_p)
    keys, vals = torch.cat([pk.expand(B, -1, -1, -1), k], 1), torch.cat([pv.expand(B, -1, -1, -1), v], 1)
    vis = torch.cat([torch.ones(B, 1, P, dtype=torch.bool, device="cuda"), visibility(B, 1, S, seq_len, "cuda")], -1)
    o_ref, lse_ref = ref_attention(q, keys, vals, vis)
    check(o, lse, o_ref, lse_ref, dtype, "co-run at the rule's pick")


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_inputs_name_the_argument(requires_tk):
    from tkprefix import tk_hydragen as tkh

    q = rnd(4, 1, 8, 128, dtype=torch.bfloat16)
    k = rnd(2, 100, 2, 128, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="q"):
        tkh.prefix_attention(q.float(), k, k)
    with pytest.raises(ValueError, match="head_dim"):
        tkh.prefix_attention(rnd(4, 1, 8, 96, dtype=torch.bfloat16), rnd(2, 100, 2, 96, dtype=torch.bfloat16),
                             rnd(2, 100, 2, 96, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="k"):
        tkh.prefix_attention(q, rnd(3, 100, 2, 128, dtype=torch.bfloat16), rnd(3, 100, 2, 128, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="kv heads"):
        tkh.prefix_attention(q, rnd(2, 100, 3, 128, dtype=torch.bfloat16), rnd(2, 100, 3, 128, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="device"):
        tkh.prefix_attention(q, k.cpu(), k.cpu())
    with pytest.raises(ValueError, match="n_splits"):
        tkh.prefix_attention(q, k, k, n_splits=2)          # 100 keys = one 128-key tile
    with pytest.raises(ValueError, match="seq_len"):
        tkh.decode_attention(q, rnd(4, 10, 2, 128, dtype=torch.bfloat16), rnd(4, 10, 2, 128, dtype=torch.bfloat16),
                             torch.zeros(3, dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="shared_vs"):
        tkh.hydragen_attention_nopad(q, k, k, [k], [])
    kd = rnd(4, 10, 2, 128, dtype=torch.bfloat16)
    for bad in (0, 10_000, 2.5, True):
        with pytest.raises(ValueError, match="prefix_sms: expected an int"):
            tkh.hydragen_attention_nopad(q, kd, kd, [k], [k], prefix_sms=bad)
    with pytest.raises(ValueError, match="prefix_sms: .* needs overlap True or None"):
        tkh.hydragen_attention_nopad(q, kd, kd, [k], [k], prefix_sms=4, overlap=False)
