"""Hydragen on the ThunderKittens kernels (``backend="tk"``).

Layouts follow upstream Hydragen, ``(batch, tokens, heads, head_dim)``; scale ``1/sqrt(D)``; GQA: q-head ``h`` uses
kv-head ``h // (Hq // Hkv)``; LSE is float32, natural log, shape ``(B, Nq, Hq)``; an empty key set gives ``o = 0``,
``lse = -inf``. Inputs: bfloat16 or float16 CUDA tensors on a Hopper GPU (sm_90), head_dim 64 or 128.

Three kernels (``kernels/hydragen/``):

* ``prefix``  -- TK TMA + wgmma: the ``(B/Bp)*Nq*(Hq/Hkv)`` queries that share one (prefix row, kv-head) are stacked
  into one matrix and attend non-causally to the prefix, read in place from its ``(Bp, P, Hkv, D)`` cache; the key
  range is split over blocks when there are too few rows to fill the 132 SMs.
* ``decode``  -- the unique part: per-sequence attention, memory-bound, split-KV for long caches; one pass over a
  (sequence, kv-head)'s K/V serves all its ``Nq*Hq/Hkv`` query rows on the tensor cores (GQA-packed).
* ``merge``   -- exact LSE merge of fp32 partial slots (key splits, prefix levels, the unique part) in one pass.

No function here synchronises with the host or allocates outside torch's caching allocator, so a decode step made
of them can be captured in a CUDA graph (pass ``seq_len`` as an int32 CUDA tensor, and ``out=`` buffers if you want
fixed outputs).

Example (on a Hopper GPU)::

    >>> import torch, tkprefix.tk_hydragen as tkh                                   # doctest: +SKIP
    >>> B, Hq, Hkv, D = 32, 32, 8, 128                                               # doctest: +SKIP
    >>> q = torch.randn(B, 1, Hq, D, device="cuda", dtype=torch.bfloat16)            # doctest: +SKIP
    >>> pk = torch.randn(1, 4096, Hkv, D, device="cuda", dtype=torch.bfloat16)       # one shared prefix
    >>> uk = torch.randn(B, 512, Hkv, D, device="cuda", dtype=torch.bfloat16)        # unique caches
    >>> o = tkh.hydragen_attention_nopad(q, uk, uk, [pk], [pk])                      # doctest: +SKIP
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from . import build

__all__ = ["prefix_attention", "decode_attention", "merge_states", "hydragen_attention_nopad",
           "prefix_plan", "prefix_splits", "decode_splits"]

PREFIX_BLOCK_ROWS = 192   # query rows per prefix block (3 consumer warpgroups x 64)
PREFIX_TILE_KEYS = 128    # keys per prefix pipeline stage
DECODE_TILE_KEYS = 64     # keys per decode tile
DECODE_WARPS = 4
# Resident decode blocks per SM (68 KB of shared memory each at D 128): one wave is DECODE_BLOCKS_PER_SM x SMs blocks.
# (Splits of one tile run a one-stage build at 4 an SM, 5 at <= 16 rows; decode_splits' own splits are >= 2 tiles, so
# one-tile splits come only from caches of <= 64 keys or a caller's n_splits.)
DECODE_BLOCKS_PER_SM = 3


_EXT = None


def _ext():
    global _EXT   # cached: this is on every call's path, and load_extension() globs the kernel folders
    if _EXT is None:
        _EXT = build.load_extension()
    return _EXT


@lru_cache(maxsize=None)
def _num_sms(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


_SIDE: dict[int, torch.cuda.Stream] = {}


def _side_stream(device_index: int) -> torch.cuda.Stream:
    if device_index not in _SIDE:
        _SIDE[device_index] = torch.cuda.Stream(device=device_index)
    return _SIDE[device_index]


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


# ---------------------------------------------------------------------------------------------------- checks
def _check_qkv(q, k, v, *, kv_name: str = "k"):
    for name, t in (("q", q), (kv_name, k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name}: expected 4-D (batch, tokens, heads, head_dim), got shape {tuple(t.shape)}")
        if not t.is_cuda:
            raise ValueError(f"{name}: the tk backend needs CUDA tensors, got device {t.device}")
        if t.dtype not in (torch.bfloat16, torch.float16):
            raise TypeError(f"{name}: the tk backend takes bfloat16 or float16, got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name}: must be on q's device {q.device}, got {t.device}")
        if t.dtype != q.dtype:
            raise TypeError(f"{name}: dtype {t.dtype} differs from q's {q.dtype}")
    D = q.shape[-1]
    if D not in (64, 128):
        raise ValueError(f"q: head_dim must be 64 or 128 for the tk backend, got {D}")
    if k.shape != v.shape:
        raise ValueError(f"{kv_name}/v: shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    if k.shape[-1] != D:
        raise ValueError(f"{kv_name}: head_dim {k.shape[-1]} differs from q's {D}")
    Hq, Hkv = q.shape[2], k.shape[2]
    if Hkv == 0 or Hq % Hkv != 0:
        raise ValueError(f"{kv_name}: kv heads ({Hkv}) must divide q heads ({Hq})")


def _prep(t: torch.Tensor) -> torch.Tensor:
    """Last dim contiguous and 16-byte aligned rows (a no-op for the usual contiguous (B, N, H, D) tensors)."""
    if t.stride(-1) != 1 or any(s % 8 for s in t.stride()[:-1]) or t.data_ptr() % 16:
        t = t.contiguous()
    return t


def _outputs(q, out, name):
    B, Nq, Hq, D = q.shape
    if out is None:
        return (torch.empty(B, Nq, Hq, D, device=q.device, dtype=q.dtype),
                torch.empty(B, Nq, Hq, device=q.device, dtype=torch.float32))
    o, lse = out
    if o.shape != q.shape or o.dtype != q.dtype or not o.is_contiguous() or o.device != q.device:
        raise ValueError(f"{name}: out[0] must be a contiguous {q.dtype} tensor of shape {tuple(q.shape)} on {q.device}")
    if o.data_ptr() % 16:   # the kernels' 4-byte stores of bf16 pairs (and the C entry) need an aligned row start
        raise ValueError(f"{name}: out[0] must start at a 16-byte aligned address (a view at offset "
                         f"{o.storage_offset()} elements is not)")
    if lse.shape != (B, Nq, Hq) or lse.dtype != torch.float32 or not lse.is_contiguous() or lse.device != q.device:
        raise ValueError(f"{name}: out[1] must be a contiguous float32 tensor of shape {(B, Nq, Hq)} on {q.device}")
    return o, lse


# ---------------------------------------------------------------------------------------------------- split plans
# Relative time of one 128-key step of a 192- / 128-row block (compute-bound), with the overlapped loop of 128-row
# blocks: every c3 prefix shape measured fastest at the plan this picks (scripts/device/NOTES.md, session 11).
PREFIX_TILE_COST = {3: 1.0, 2: 0.69}
PREFIX_PINGPONG = False                 # default for 2-consumer blocks (see prefix_attention's pingpong)
# Measured in scripts/device/NOTES.md (session 10), both on by default:
PREFIX_OVERLAP = True      # 2-consumer blocks whose two warpgroups both have rows: Q K^T of a tile and P V of the one
                           # before in flight together (c3 compute-bound prefixes 1.03-1.08x faster); with <= 64 rows
                           # the serial loop is kept (an idle warpgroup would compute on zero rows: 1-2 % slower)
PREFIX_OVERLAP_MIN_TILES = 12  # tiles per work item; shorter loops (split prefixes) keep the serial loop: at <= 8
                               # tiles the overlapped one measured 0.94-1.02x, at >= 12 1.00-1.06x (session 11)
# 176-key tiles (FlashAttention-3's; prefix.cu's KV_ROWS_WIDE) for the serial loop's compute-bound items: >=
# PREFIX_WIDE_MIN_ROWS stacked rows, one split, 2 consumer warpgroups, D 128, and only where they make fewer tiles than
# 128 keys do. c3 B512 32/8 P1024: 6 tiles instead of 8, 1.05x faster (data/h200/dev/s18_prefix_stages, s19_prefix_wide)
PREFIX_WIDE = True
PREFIX_WIDE_TILE_KEYS = 176
PREFIX_WIDE_MIN_ROWS = 256
PREFIX_PERSISTENT = True   # at most one block per SM, each looping over work items, the next item's Q loaded under
                           # the last tile (per item: block launch, Q gather and pipeline fill no longer exposed)
# Programmatic dependent launch (Hopper; kernels/common/tkp_common.cuh): a decode or merge launched right after this
# module's own prefix or decode kernel may be scheduled before that kernel ends (its blocks fill the SMs the earlier
# blocks leave, without a launch gap) and waits for it only before it reads the slots or writes. Never for a call's
# first kernel: the kernel before that is the caller's. False: every launch waits for the one before it.
PDL = True


def _stacked_rows(q: torch.Tensor, k: torch.Tensor) -> int:
    """Query rows stacked on one (prefix row, kv-head) of a level k: sequences per prefix row x Nq x q-heads per kv-head
    (also the level's FLOPs per byte of its K/V)."""
    return (q.shape[0] // k.shape[0]) * q.shape[1] * (q.shape[2] // k.shape[2])


def _prefix_schedule(q: torch.Tensor, k: torch.Tensor, cw: int, pingpong: bool, n_splits: int,
                     n_sm: int | None = None) -> tuple[int, int]:
    """(schedule bits, grid cap) of a prefix launch of cw consumer warpgroups: bit 0 ping-pong, bit 1 the overlapped
    loop, bit 2 176-key tiles; cap 0 = a block per work item. n_sm: the SMs the launch may take (default all)."""
    rows = _stacked_rows(q, k)
    n_tiles = math.ceil(k.shape[1] / PREFIX_TILE_KEYS)
    tiles_per_item = math.ceil(n_tiles / n_splits)
    pingpong = pingpong and cw == 2
    overlap = (PREFIX_OVERLAP and cw == 2 and not pingpong and rows > 64
               and tiles_per_item >= PREFIX_OVERLAP_MIN_TILES)
    wide = (PREFIX_WIDE and not overlap and not pingpong and cw == 2 and n_splits == 1 and q.shape[3] == 128
            and rows >= PREFIX_WIDE_MIN_ROWS and n_tiles < PREFIX_OVERLAP_MIN_TILES
            and math.ceil(k.shape[1] / PREFIX_WIDE_TILE_KEYS) < n_tiles)
    cap = (n_sm or _num_sms(q.device.index or 0)) if PREFIX_PERSISTENT or n_sm else 0
    return (1 if pingpong else 0) | (2 if overlap else 0) | (4 if wide else 0), cap


@lru_cache(maxsize=4096)   # pure function of ints: memoised, it sits on every call's host path
def prefix_plan(rows: int, groups: int, P: int, n_sm: int, rows_total: int = 0, D: int = 128,
                consumer_warpgroups: int | None = None, n_splits: int | None = None) -> tuple[int, int]:
    """(consumer_warpgroups, n_splits) for the prefix kernel.

    Minimises waves x (tiles per block x step cost + pipeline fill) plus the cost of merging fp32 partials, in units
    of one 128-key step of a 192-row block (~2.8 us at full rate on an H100). Blocks hold 64*cw query rows (cw = 2
    or 3 consumer warpgroups); splitting the key range multiplies the blocks when rows alone cannot fill the SMs.
    rows: stacked query rows per (prefix row, kv-head); groups: Bp * Hkv; rows_total: B * Nq * Hq (for the merge).
    """
    n_tiles = max(1, math.ceil(P / PREFIX_TILE_KEYS))
    cws = (consumer_warpgroups,) if consumer_warpgroups else (3, 2)
    best, best_cost = None, None
    for cw in cws:
        base = math.ceil(rows / (64 * cw)) * groups
        splits = (n_splits,) if n_splits else range(1, min(n_tiles, 64) + 1)
        for s in splits:
            tps = math.ceil(n_tiles / s)
            if math.ceil(n_tiles / tps) != s:
                continue
            waves = math.ceil(base * s / n_sm)
            cost = waves * (tps * PREFIX_TILE_COST[cw] + 1.5)
            if s > 1:  # fp32 partials written and read back, the output written, at ~2.5 TB/s, in 2.8 us steps
                cost += rows_total * D * (8 * s + 2) / 2.5e12 / 2.8e-6
            if best_cost is None or cost < best_cost * 0.97:
                best, best_cost = (cw, s), cost
    return best if best is not None else (cws[0], n_splits or 1)


def prefix_splits(rows: int, groups: int, P: int, n_sm: int, rows_total: int = 0, D: int = 128) -> int:
    """The key-split count of prefix_plan (kept for callers that only want that)."""
    return prefix_plan(rows, groups, P, n_sm, rows_total, D)[1]


def _wave_fill(blocks: int, wave: int) -> float:
    """Busy fraction of the block slots over the waves a launch of `blocks` takes (one partial wave counts as full:
    its blocks just run with fewer neighbours per SM)."""
    return 1.0 if blocks <= wave else blocks / (math.ceil(blocks / wave) * wave)


@lru_cache(maxsize=4096)
def decode_splits(blocks: int, S: int, n_sm: int, D: int = 128) -> tuple[int, int]:
    """(n_splits, split_keys) for the decode kernel. A split costs fp32 partials and a merge pass (and the decode can no
    longer merge the prefix slots itself), so the keys are split only where the blocks leave the GPU badly used:

    * blocks for at most half the SMs, >= 512 keys: up to one block per SM (two at D 64), at most 16 splits, of
      >= 2 tiles each for caches of <= 16 tiles, else >= 4, and >= 8 once the blocks alone cover a quarter of the SMs;
    * between one and two waves (a partial second wave): the split count of 1-4 (>= 8 tiles a split) that fills the
      waves best.

    Measured on the H200 (scripts/device/NOTES.md, sessions 8 and 9): heads 32/32, 32/8 and 8/1, D 128 and 64, 1-4,096
    blocks, 256-8,192 keys, 1-128 splits (data/h200/dev/s8_decode_splits, data/h200/dev/s9_decode_splits_small). Over
    those 106 shapes the rule's pick is at most 6.2 % slower than the fastest split (1.003x in geometric mean). One
    split is fastest at >= 2 waves and under 512 keys; under a wave, one block per SM (more blocks per SM start a
    second round of tiles); a split of fewer tiles than these loses to its merge and its fixed cost."""
    n_tiles = max(1, math.ceil(S / DECODE_TILE_KEYS))
    wave = DECODE_BLOCKS_PER_SM * n_sm
    s = 1
    if 2 * blocks <= n_sm and n_tiles >= 8:
        min_tiles = 8 if 4 * blocks > n_sm else 2 if n_tiles <= 16 else 4
        s = min(n_sm * max(1, 128 // D) // max(blocks, 1), 16, n_tiles // min_tiles)
    elif wave < blocks < 2 * wave:
        counts = range(1, max(1, min(4, n_tiles // 8)) + 1)
        s = max(counts, key=lambda c: (_wave_fill(blocks * c, wave), -c))  # ties: the fewest splits
    s = max(1, s)
    tps = math.ceil(n_tiles / s)
    return math.ceil(n_tiles / tps), tps * DECODE_TILE_KEYS


def _decode_blocks(B, Nq, Hq, Hkv):
    """Blocks of one decode split (rows per block as kernels/hydragen/decode.cu's launch_rows picks them)."""
    rows = Nq * (Hq // Hkv)
    per_block = 16 if rows <= 16 else 32 if rows <= 32 else 64
    return math.ceil(rows / per_block) * B * Hkv


# ---------------------------------------------------------------------------------------------------- launches into slots
def _plan_prefix(q, k, n_splits, consumer_warpgroups=None, n_sm=None):
    """(consumer_warpgroups, n_splits) with every split non-empty, planned for n_sm SMs (default all)."""
    B, Nq, Hq, D = q.shape
    Bp, P, Hkv, _ = k.shape
    n_tiles = math.ceil(P / PREFIX_TILE_KEYS)
    if n_splits is not None and not 1 <= n_splits <= n_tiles:
        raise ValueError(f"n_splits: must be in [1, {n_tiles}] for a prefix of {P} keys, got {n_splits}")
    if consumer_warpgroups not in (None, 2, 3):
        raise ValueError(f"consumer_warpgroups: must be 2, 3 or None, got {consumer_warpgroups}")
    if n_splits is not None:
        tps = math.ceil(n_tiles / n_splits)
        n_splits = math.ceil(n_tiles / tps)
    return prefix_plan(_stacked_rows(q, k), Bp * Hkv, P, n_sm or _num_sms(q.device.index or 0), B * Nq * Hq, D,
                       consumer_warpgroups, n_splits)


# Co-run of a compute-bound prefix with the suffix decode (session 12, data/h200/dev/s12_corun): the prefix's
# persistent grid takes n_p SMs and is launched first, on the caller's stream, the decode (side stream) fills the
# other SMs and then every SM the prefix frees; one merge kernel joins them. The two parts' times are estimated at
# these full-GPU rates (H200: prefix kernel alone 490-520 TFLOP/s on the c3 shapes, decode alone 3.6-4.2 TB/s):
CORUN_PREFIX_FLOPS = 500e12
CORUN_DECODE_BYTES = 4.0e12
CORUN_SHARE = 1.4          # n_p = 1.4 x the prefix's share of the serial time: the prefix, stuck on its n_p SMs,
                           # should end before the decode (the decode slows far less than its SMs shrink)
CORUN_MIN_DECODE_US = 100  # smaller decodes measured 0.93-1.05x: too little to gain beside the merge kernel
CORUN_AUTO = True          # the automatic co-run (False: only prefix_sms opts in)
CORUN_MIN_ROWS = 256       # stacked query rows per kv-head of every level: a level's FLOPs per prefix byte equal its
                           # rows, so below ~125 (500 TFLOP/s / 4 TB/s) the prefix is memory-bound and competes with
                           # the decode for bandwidth (c7 forests, 16-32 rows: 1.26-1.45x slower co-run at 44772a2)


def _part_times(q, k, levels) -> tuple[float, float]:
    """Estimated seconds of the prefix levels (their FLOPs at CORUN_PREFIX_FLOPS) and of the decode (the unique K/V
    bytes at CORUN_DECODE_BYTES)."""
    B, Nq, Hq, D = q.shape
    t_p = sum(4 * B * Nq * Hq * sk.shape[1] * D for sk, _ in levels) / CORUN_PREFIX_FLOPS
    t_d = 2 * B * k.shape[1] * k.shape[2] * D * k.element_size() / CORUN_DECODE_BYTES
    return t_p, t_d


def _corun_sms(q, k, levels, n_sm: int) -> int:
    """SMs for the prefix levels co-running with the decode (0: run them one after the other). Measured on the c3
    shapes with a suffix (24): 1.00-1.12x the serial step's speed, 1.03x in geometric mean; the gains where the two
    parts take similar times (8/1 B4096 P8192 S512: 518 -> 466 us)."""
    if any(_stacked_rows(q, sk) < CORUN_MIN_ROWS for sk, _ in levels):
        return 0
    t_p, t_d = _part_times(q, k, levels)
    if t_d * 1e6 < CORUN_MIN_DECODE_US:
        return 0
    n_p = max(n_sm // 3, round(CORUN_SHARE * n_sm * t_p / (t_p + t_d)))
    return n_p if n_p < 0.9 * n_sm else 0


def _prefix_blocks(q, k, cw_rows_blocks: int = 1) -> int:
    """Blocks of an unsplit prefix launch with 2 consumer warpgroups (128 query rows each)."""
    return math.ceil(_stacked_rows(q, k) / 128) * k.shape[0] * k.shape[2] * cw_rows_blocks


def _plan_decode(q, k, n_splits):
    B, Nq, Hq, D = q.shape
    S, Hkv = k.shape[1], k.shape[2]
    auto_s, auto_keys = decode_splits(_decode_blocks(B, Nq, Hq, Hkv), S, _num_sms(q.device.index or 0), D)
    if n_splits is None:
        return auto_s, auto_keys
    n_tiles = max(1, math.ceil(S / DECODE_TILE_KEYS))
    if not 1 <= n_splits <= n_tiles:
        raise ValueError(f"n_splits: must be in [1, {n_tiles}] for {S} keys, got {n_splits}")
    tps = math.ceil(n_tiles / n_splits)
    return math.ceil(n_tiles / tps), tps * DECODE_TILE_KEYS


def _seq_len_arg(seq_len, q):
    if seq_len is None:
        return None
    if not isinstance(seq_len, torch.Tensor):
        raise TypeError(f"seq_len: expected an int tensor of shape ({q.shape[0]},) or None, got {type(seq_len).__name__}")
    if seq_len.dim() != 1 or seq_len.shape[0] != q.shape[0]:
        raise ValueError(f"seq_len: expected shape ({q.shape[0]},), got {tuple(seq_len.shape)}")
    if seq_len.dtype not in (torch.int32, torch.int64, torch.int16, torch.uint8):
        raise TypeError(f"seq_len: expected an integer tensor, got {seq_len.dtype}")
    if seq_len.dtype != torch.int32 or seq_len.device != q.device or not seq_len.is_contiguous():
        seq_len = seq_len.to(device=q.device, dtype=torch.int32).contiguous()
    return seq_len


# ---------------------------------------------------------------------------------------------------- public API
def prefix_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, n_splits: int | None = None,
                     consumer_warpgroups: int | None = None, pingpong: bool | None = None,
                     out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-causal attention of every query to a shared prefix.

    q: (B, Nq, Hq, D); k, v: (Bp, P, Hkv, D) with Bp | B -- sequence b uses prefix row b // (B // Bp).
    Returns o (B, Nq, Hq, D) in q's dtype and lse (B, Nq, Hq) float32 (natural log). P == 0 gives o = 0, lse = -inf.
    n_splits: key-range splits, consumer_warpgroups: 2 or 3 (128- or 192-row blocks) -- both chosen by
    prefix_plan by default; pingpong: 2-consumer blocks alternate their Q K^T issue (default PREFIX_PINGPONG);
    out: optional preallocated (o, lse).
    """
    _check_qkv(q, k, v)
    B, Nq, Hq, D = q.shape
    Bp, P = k.shape[0], k.shape[1]
    if Bp == 0 or B % Bp != 0:
        raise ValueError(f"k: prefix batch ({Bp}) must divide the batch of q ({B})")
    o, lse = _outputs(q, out, "prefix_attention")
    if B == 0 or Nq == 0:
        return o, lse
    if P == 0:
        o.zero_()
        lse.fill_(-math.inf)
        return o, lse
    q, k, v = _prep(q), _prep(k), _prep(v)
    ext = _ext()
    cw, s = _plan_prefix(q, k, n_splits, consumer_warpgroups)
    sched, cap = _prefix_schedule(q, k, cw, PREFIX_PINGPONG if pingpong is None else bool(pingpong), s)
    if s == 1:
        ext.prefix_attention(q, k, v, o, lse, 1, cw, sched, cap, _stream(q))
    else:
        ws_o = torch.empty((s, B, Nq, Hq, D), device=q.device, dtype=torch.float32)
        ws_lse = torch.empty((s, B, Nq, Hq), device=q.device, dtype=torch.float32)
        ext.prefix_attention(q, k, v, ws_o, ws_lse, s, cw, sched, cap, _stream(q))
        # plain launch: with PDL this merge measured 1.02-1.03x slower (data/h200/dev/s28_verify)
        ext.merge_slots([(ws_o, ws_lse)], o, lse, _stream(q))
    return o, lse


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seq_len: torch.Tensor | None = None, *,
                     n_splits: int | None = None,
                     out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence attention over the unique caches.

    q: (B, Nq, Hq, D); k, v: (B, S, Hkv, D). seq_len None: causal, bottom-right aligned (query j sees keys
    0 .. S-Nq+j); seq_len (B,) ints in [0, S]: every query of sequence b sees keys 0 .. seq_len[b]-1 (0 allowed:
    empty, o = 0, lse = -inf). The values are not checked here (that needs a device sync): the public
    tkprefix.decode_attention checks them on every backend. Returns (o, lse) like prefix_attention.
    """
    _check_qkv(q, k, v)
    B, Nq, Hq, D = q.shape
    if k.shape[0] != B:
        raise ValueError(f"k: batch ({k.shape[0]}) must equal q's ({B})")
    seq_len = _seq_len_arg(seq_len, q)
    o, lse = _outputs(q, out, "decode_attention")
    if B == 0 or Nq == 0:
        return o, lse
    q, k, v = _prep(q), _prep(k), _prep(v)
    ext = _ext()
    s, split_keys = _plan_decode(q, k, n_splits)
    if s == 1:
        ext.decode_attention(q, k, v, seq_len, o, lse, 1, split_keys, None, None, _stream(q))
    else:
        ws_o = torch.empty((s, B, Nq, Hq, D), device=q.device, dtype=torch.float32)
        ws_lse = torch.empty((s, B, Nq, Hq), device=q.device, dtype=torch.float32)
        ext.decode_attention(q, k, v, seq_len, ws_o, ws_lse, s, split_keys, None, None, _stream(q))
        ext.merge_slots([(ws_o, ws_lse)], o, lse, _stream(q), pdl=PDL)
    return o, lse


def merge_states(o_a: torch.Tensor, lse_a: torch.Tensor, o_b: torch.Tensor,
                 lse_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact merge of two attention states over disjoint key sets: lse = logaddexp(lse_a, lse_b),
    o = o_a * exp(lse_a - lse) + o_b * exp(lse_b - lse); -inf safe (an empty side is the identity).

    o_a, o_b: (..., D) of one dtype (bf16, fp16 or fp32), lse_a, lse_b: (...) float32. Returns (o, lse).
    """
    for name, t in (("o_a", o_a), ("lse_a", lse_a), ("o_b", o_b), ("lse_b", lse_b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if not t.is_cuda:
            raise ValueError(f"{name}: the tk backend needs CUDA tensors, got device {t.device}")
    if o_a.shape != o_b.shape or o_a.dtype != o_b.dtype:
        raise ValueError(f"o_b: shape/dtype {tuple(o_b.shape)}/{o_b.dtype} differ from o_a's {tuple(o_a.shape)}/{o_a.dtype}")
    if o_a.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise TypeError(f"o_a: dtype must be bfloat16, float16 or float32, got {o_a.dtype}")
    if o_a.shape[-1] not in (64, 128):
        raise ValueError(f"o_a: head_dim must be 64 or 128 for the tk backend, got {o_a.shape[-1]}")
    for name, t in (("lse_a", lse_a), ("lse_b", lse_b)):
        if t.shape != o_a.shape[:-1] or t.dtype != torch.float32:
            raise ValueError(f"{name}: expected float32 of shape {tuple(o_a.shape[:-1])}, got {t.dtype} {tuple(t.shape)}")
    o = torch.empty_like(o_a, memory_format=torch.contiguous_format)
    lse = torch.empty(o_a.shape[:-1], device=o_a.device, dtype=torch.float32)
    if o.numel() == 0:
        return o, lse
    _ext().merge_slots([(o_a.contiguous(), lse_a.contiguous()), (o_b.contiguous(), lse_b.contiguous())], o, lse,
                       _stream(o_a))
    return o, lse


PREFIX_DECODE_AUTO = True      # prefix_decode=None takes the fused kernel where _prefix_decode_auto says so
PREFIX_DECODE_MAX_RATIO = 0.7  # the decode's time over the prefix's (both by _part_times) at most this


def _prefix_decode_unfit(q, k, levels, overlap, prefix_sms, decode_n_splits) -> str | None:
    """Why prefix_decode=True cannot run here (the kernel's limits: tkp_prefix_attention's `unique`), or None."""
    B, Nq, Hq, D = q.shape
    if len(levels) != 1 or k.shape[1] == 0:
        return (f"needs exactly one non-empty shared level and a unique part (k.shape[1] > 0), got {len(levels)} "
                f"non-empty levels and k.shape[1] = {k.shape[1]}")
    if D != 128:
        return f"needs head_dim 128, got {D}"
    if Nq * (Hq // k.shape[2]) > 16:
        return f"needs Nq * Hq/Hkv <= 16 query rows a kv-head, got {Nq * (Hq // k.shape[2])}"
    if overlap or prefix_sms is not None or decode_n_splits not in (None, 1):
        return "the decode runs inside the prefix kernel, unsplit; overlap, prefix_sms and decode_n_splits do not apply"
    return None


def _prefix_decode_auto(q, k, levels, overlap, prefix_sms, decode_n_splits) -> bool:
    """Whether prefix_decode=None runs the decode inside the prefix kernel. Measured on an H100
    (data/h200/dev/s36_prefix_decode/ab.csv: every c3 case with a suffix and three of c1's): the fused step is
    0.86-0.99x the default step's time wherever the decode's estimated time is at most 0.49x the prefix's (7 shapes:
    c3 at suffix 64 from B1024 8/1 and B2048 32/8, and 8/1 B4096 at suffix 256), and 1.05-1.27x where it is 0.98x or
    more (but for 0.98x on 8/1 B2048 S256); the threshold sits between the two. The one decode warpgroup an SM keeps
    about one tile in flight, so a larger decode outlasts the prefix it hides under. Only for compute-bound levels
    (CORUN_MIN_ROWS stacked rows; none with fewer was measured) and where the kernel applies; never where the caller
    asks for the overlap, prefix_sms or decode splits."""
    if not PREFIX_DECODE_AUTO or _prefix_decode_unfit(q, k, levels, overlap, prefix_sms, decode_n_splits):
        return False
    if _stacked_rows(q, levels[0][0]) < CORUN_MIN_ROWS:
        return False
    t_p, t_d = _part_times(q, k, levels)
    return t_d <= PREFIX_DECODE_MAX_RATIO * t_p


def hydragen_attention_nopad(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shared_ks, shared_vs,
                             seq_len: torch.Tensor | None = None, *, return_lse: bool = False,
                             prefix_n_splits: int | None = None, decode_n_splits: int | None = None,
                             fuse_merge: bool = True, overlap: bool | None = None, prefix_sms: int | None = None,
                             prefix_decode: bool | None = None, out: torch.Tensor | None = None):
    """Hydragen attention (upstream's signature): shared prefix levels, then the unique part, merged by LSE.

    q: (B, Nq, Hq, D); k, v: (B, S, Hkv, D) unique caches with seq_len (B,) used lengths (None: causal, see
    decode_attention); shared_ks[i], shared_vs[i]: (B_i, P_i, Hkv, D) with B_i | B (sequence b uses row
    b // (B // B_i)). Every level writes fp32 partial slots into one workspace, so no intermediate is rounded to
    bf16; the decode kernel merges them into its own result as it writes o (fuse_merge, when the unique part is not
    split), else one merge kernel reduces all slots. overlap: run the prefix kernels on a side stream, concurrently
    with the decode kernel (then a merge kernel joins them), on at most half the SMs, or on prefix_sms SMs (their
    persistent grid capped there; then the prefix goes on the caller's stream and the decode on the side stream,
    so that the prefix takes its SMs first); None = automatic: on when every level is memory-bound (its unsplit grid
    fills less than half the SMs); with CORUN_AUTO also for compute-bound levels beside a large decode, on the SMs
    `_corun_sms` picks. prefix_decode: True runs the unique part inside the prefix kernel, in a fourth warpgroup of
    its blocks (kernels/hydragen/prefix_decode.cuh), then a merge kernel; for one shared level, a unique part,
    head_dim 128 and Nq * Hq/Hkv <= 16 query rows a kv-head (else a ValueError), without overlap, prefix_sms or decode
    splits; None = automatic (`_prefix_decode_auto`: where it applies, the prefix is compute-bound and the decode's
    estimated time at most 0.7x the prefix's); False: never.
    Returns o (B, Nq, Hq, D) (and lse if return_lse).
    """
    if len(shared_ks) != len(shared_vs):
        raise ValueError(f"shared_vs: {len(shared_vs)} levels but shared_ks has {len(shared_ks)}")
    _check_qkv(q, k, v)
    B, Nq, Hq, D = q.shape
    if k.shape[0] != B:
        raise ValueError(f"k: batch ({k.shape[0]}) must equal q's ({B})")
    levels = []
    for i, (sk, sv) in enumerate(zip(shared_ks, shared_vs)):
        _check_qkv(q, sk, sv, kv_name=f"shared_ks[{i}]")
        if sk.shape[0] == 0 or B % sk.shape[0] != 0:
            raise ValueError(f"shared_ks[{i}]: prefix batch ({sk.shape[0]}) must divide the batch of q ({B})")
        if sk.shape[2] != k.shape[2]:
            raise ValueError(f"shared_ks[{i}]: kv heads ({sk.shape[2]}) differ from k's ({k.shape[2]})")
        if sk.shape[1] > 0:
            levels.append((_prep(sk), _prep(sv)))
    seq_len = _seq_len_arg(seq_len, q)
    if prefix_decode is None:
        prefix_decode = _prefix_decode_auto(q, k, levels, overlap, prefix_sms, decode_n_splits)
    elif prefix_decode and (why := _prefix_decode_unfit(q, k, levels, overlap, prefix_sms, decode_n_splits)):
        raise ValueError(f"prefix_decode: {why}")
    if prefix_sms is not None:
        n_sm = _num_sms(q.device.index or 0)
        if isinstance(prefix_sms, bool) or not isinstance(prefix_sms, int) or not 1 <= prefix_sms <= n_sm:
            raise ValueError(f"prefix_sms: expected an int in [1, {n_sm}] (the SMs of {q.device}), got {prefix_sms!r}")
        if overlap is False:
            raise ValueError("prefix_sms: caps the overlapped prefix's SMs; it needs overlap True or None, not False")
        overlap = True
    if out is not None and (out.shape != q.shape or out.dtype != q.dtype or not out.is_contiguous()
                            or out.data_ptr() % 16):
        raise ValueError(f"out: must be a contiguous {q.dtype} tensor of shape {tuple(q.shape)} starting at a 16-byte "
                         "aligned address")
    o = out if out is not None else torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = torch.empty(B, Nq, Hq, device=q.device, dtype=torch.float32)
    if B == 0 or Nq == 0:
        return (o, lse) if return_lse else o
    if k.shape[1] == 0 and len(levels) <= 1:
        # no unique part (a static shape, so no sync): the prefix kernel writes o and lse itself, with no fp32
        # slots and no decode/merge pass (c3 at suffix 0: measured in data/h100)
        if not levels:
            o.zero_()
            lse.fill_(-math.inf)
        else:
            prefix_attention(q, *levels[0], n_splits=prefix_n_splits, out=(o, lse))
        return (o, lse) if return_lse else o
    q, k, v = _prep(q), _prep(k), _prep(v)
    ext = _ext()
    if prefix_decode:
        (sk, sv), = levels
        _, s = _plan_prefix(q, sk, prefix_n_splits, 2)
        pingpong = _prefix_schedule(q, sk, 2, PREFIX_PINGPONG, s)[0] & 1
        ws_o = torch.empty((s + 1, B, Nq, Hq, D), device=q.device, dtype=torch.float32)
        ws_lse = torch.empty((s + 1, B, Nq, Hq), device=q.device, dtype=torch.float32)
        ext.prefix_decode_attention(q, sk, sv, ws_o[:s], ws_lse[:s], s, pingpong, 0, k, v, seq_len, ws_o[s], ws_lse[s],
                                    _stream(q))
        ext.merge_slots([(ws_o, ws_lse)], o, lse, _stream(q))
        return (o, lse) if return_lse else o
    n_sm = _num_sms(q.device.index or 0)
    if overlap is None:   # measured (scripts/device/NOTES.md, call 4): B32 P4096 S512 32/32 step 140 -> 136 us
        # only where the prefix can hide behind the decode: few prefix blocks (memory-bound) and prefix bytes well
        # under the unique bytes (the prefix then runs on <= half the SMs at about half the bandwidth)
        prefix_bytes = sum(sk.shape[0] * sk.shape[1] for sk, _ in levels)
        overlap = (prefix_bytes <= 0.4 * B * k.shape[1]
                   and all(_prefix_blocks(q, sk, 1) * 2 <= n_sm for sk, _ in levels))
        if CORUN_AUTO and not overlap and prefix_sms is None and k.shape[1] > 0:   # compute-bound: co-run on a share
            prefix_sms = _corun_sms(q, k, levels, n_sm) or None
            overlap = prefix_sms is not None
    if prefix_sms is not None:   # the prefix plans its waves on its share of the SMs
        plans = [_plan_prefix(q, sk, prefix_n_splits, None, prefix_sms) for sk, _ in levels]
    elif overlap and prefix_n_splits is None:
        # the prefix shares the GPU with the decode kernel: split it only up to half the SMs
        plans = [_plan_prefix(q, sk, max(1, min(math.ceil(sk.shape[1] / PREFIX_TILE_KEYS),
                                                (n_sm // 2) // _prefix_blocks(q, sk, 1))), 2) for sk, _ in levels]
    else:
        plans = [_plan_prefix(q, sk, prefix_n_splits) for sk, _ in levels]
    d_splits, d_keys = _plan_decode(q, k, decode_n_splits)
    n_prefix = sum(s for _, s in plans)
    # one decode split: it merges the prefix slots itself and writes o (no merge kernel); else a merge over all slots
    overlap = overlap and n_prefix > 0
    fused = d_splits == 1 and fuse_merge and not overlap
    total = n_prefix + (0 if fused else d_splits)
    ws_o = torch.empty((total, B, Nq, Hq, D), device=q.device, dtype=torch.float32)
    ws_lse = torch.empty((total, B, Nq, Hq), device=q.device, dtype=torch.float32)
    stream = _stream(q)
    if overlap:
        main = torch.cuda.current_stream(q.device)
        side = _side_stream(q.device.index or 0)
        fork = torch.cuda.Event()
        fork.record(main)
        side.wait_event(fork)
        # a co-run prefix goes on the caller's stream: launched there without waiting on the fork, its persistent
        # grid takes its SMs before the decode's blocks fill the rest (on the side stream, eager calls started the
        # decode first and ran the prefix last on its share: 1.1-1.4x slower, scripts/device/NOTES.md session 13)
        pre_stream, dec_stream = (stream, side.cuda_stream) if prefix_sms is not None else (side.cuda_stream, stream)
        slot = 0
        for (sk, sv), (cw, s) in zip(levels, plans):
            ext.prefix_attention(q, sk, sv, ws_o[slot:slot + s], ws_lse[slot:slot + s], s, cw,
                                 *_prefix_schedule(q, sk, cw, PREFIX_PINGPONG, s, prefix_sms), pre_stream)
            slot += s
        ext.decode_attention(q, k, v, seq_len, ws_o[slot:], ws_lse[slot:], d_splits, d_keys, None, None, dec_stream)
        join = torch.cuda.Event()
        join.record(side)
        main.wait_event(join)
        ext.merge_slots([(ws_o, ws_lse)], o, lse, stream)
        return (o, lse) if return_lse else o
    slot = 0
    for (sk, sv), (cw, s) in zip(levels, plans):
        ext.prefix_attention(q, sk, sv, ws_o[slot:slot + s], ws_lse[slot:slot + s], s, cw,
                             *_prefix_schedule(q, sk, cw, PREFIX_PINGPONG, s), stream)
        slot += s
    pdl = PDL and n_prefix > 0   # the decode after this call's own prefix kernel
    if fused:
        pre = (ws_o, ws_lse) if n_prefix else (None, None)
        ext.decode_attention(q, k, v, seq_len, o, lse, 1, d_keys, pre[0], pre[1], stream, pdl=pdl)
    else:
        ext.decode_attention(q, k, v, seq_len, ws_o[slot:], ws_lse[slot:], d_splits, d_keys, None, None, stream,
                             pdl=pdl)
        ext.merge_slots([(ws_o, ws_lse)], o, lse, stream, pdl=PDL)
    return (o, lse) if return_lse else o
