"""`backend="tk"` ChunkAttention decode: ThunderKittens kernels over a `ChunkKVCache` (kernels/chunk_attn/).

One decode step is two attend launches at most plus one merge, with no host sync:

* **chunk-first** items: the shared chunks are grouped by their row range ``[shared_row_start, shared_row_end)``
  (chunks with the same range are attended together with an online softmax, which is exact and saves writing one
  fp32 partial per chunk); each group is cut into pieces of at most ``max_chunks`` chunks, and its stacked query rows
  ``(end - start) * G`` (``G = Hq // n_heads``, GQA by row stacking) into tiles of 64 or 128 rows;
* **sequence-first** items: each sequence's private chunks (ragged counts, partial last chunk through
  ``private_len``), cut into pieces of at most ``max_chunks`` chunks so that long sequences spread over many blocks;
* **merge**: every sequence combines its partial rows (one per chunk-first piece that covers it, one per
  sequence-first piece) by the LSE rule and writes ``o`` in q's dtype. Every row is written.

K and V are read in place from ``cache.k_pool`` / ``cache.v_pool`` ``(capacity_chunks, n_heads, chunk_size, d_head)``:
one TMA tile per (chunk, kv-head). The work lists (:class:`ChunkWork`) are derived on the host from the
:class:`~tkprefix.cache.ChunkPlan` once per plan object, i.e. only when the tree changes; a token appended in place
changes only ``plan.private_len``, which the kernel reads live (so a captured CUDA graph stays valid).

Example (needs a Hopper GPU and the built kernels)::

    cache = ChunkKVCache(n_heads=8, d_head=128, chunk_size=64, dtype=torch.bfloat16, device="cuda")
    ...  # add_seq / fork / append_token
    q = torch.randn(len(cache.seq_ids), 32, 128, dtype=torch.bfloat16, device="cuda")
    o = chunk_attention(q, cache)            # (n_seqs, 32, 128), q's dtype
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch

ITEM_INTS = 7  # [seq_begin, row_begin, n_rows, chunk_begin, n_chunks, out_base, kind]; see launch_chunk.h
ROWS_PER_CONSUMER = 64
CHUNK_SIZES = (64,)
HEAD_DIMS = (64, 128)
DTYPES = (torch.bfloat16, torch.float16)
KIND_SHARED, KIND_PRIVATE = 0, 1


# ------------------------------------------------------------------------------------------------ the work lists
@dataclass
class ChunkWork:
    """Device work lists for one (plan, Hq). `items[nc]` runs with `nc` consumer warpgroups (rows <= 64·nc)."""

    items: dict  # nc -> int32 (n, ITEM_INTS) on the device, longest first (both phases)
    chunk_first_items: dict  # nc -> the chunk-first items alone (to time that phase by itself)
    cf_chunks: torch.Tensor  # int32: chunk ids of the chunk-first items, grouped by row range
    merge_offset: torch.Tensor  # int32 (n_seqs + 1,)
    merge_rows: torch.Tensor  # int32
    n_partial_rows: int
    n_chunk_first_partial_rows: int
    max_chunks: int
    stats: dict


def _split(total: np.ndarray, pieces: np.ndarray):
    """For each entry i, `pieces[i]` near-equal parts of `total[i]`: (owner, begin, count) per part."""
    owner = np.repeat(np.arange(len(total)), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    j = np.arange(len(owner)) - first
    n, p = total[owner], pieces[owner]
    begin = (j * n) // p
    return owner, begin, ((j + 1) * n) // p - begin


def build_work(plan, n_kv_heads: int, n_q_heads: int, device, n_sm: int = 132, max_chunks: int | None = None,
               units_target: int | None = None, wide_rows: int = 64) -> ChunkWork:
    """Derive the kernels' work lists from a ChunkPlan (host lists only: no device sync).

    max_chunks: most chunks one work unit (item, kv-head) attends (None: chosen so that the step's chunk loads
    split into about `units_target` units, default 8·n_sm, enough for the persistent grid to balance; chunk-first
    groups of many stacked rows then get longer pieces, see below; a step without private chunks targets n_sm
    units, with max_chunks rounded up to a power of two).
    wide_rows: chunk-first row ranges of more than this many stacked rows use items of 128 rows (2 consumer
    warpgroups sharing each K/V tile); others use items of 64 rows (1 consumer).
    """
    if n_q_heads % n_kv_heads:
        raise ValueError(f"n_q_heads ({n_q_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
    g = n_q_heads // n_kv_heads
    h = plan.host
    n_seqs = plan.n_seqs
    sc = np.asarray(h["shared_chunk"], dtype=np.int64)
    s0 = np.asarray(h["shared_row_start"], dtype=np.int64)
    s1 = np.asarray(h["shared_row_end"], dtype=np.int64)
    poff = np.asarray(h["seq_private_offset"], dtype=np.int64)
    n_priv = np.diff(poff)

    # chunk-first groups: shared chunks with one row range
    order = np.lexsort((s1, s0)) if len(sc) else np.zeros(0, dtype=np.int64)
    sc, s0, s1 = sc[order], s0[order], s1[order]
    new_group = np.ones(len(sc), dtype=bool)
    new_group[1:] = (s0[1:] != s0[:-1]) | (s1[1:] != s1[:-1])
    gstart = np.flatnonzero(new_group)
    gcount = np.diff(np.append(gstart, len(sc)))
    grow0, gseqs = s0[gstart], (s1 - s0)[gstart]
    grows = gseqs * g
    gnc = np.where(grows <= max(wide_rows, ROWS_PER_CONSUMER), 1, 2)
    gtiles = -(-grows // (ROWS_PER_CONSUMER * gnc))
    ptiles = -(-np.full(n_seqs, g) // ROWS_PER_CONSUMER)  # row tiles of one sequence's q-heads

    fixed_mc = max_chunks
    if max_chunks is None:
        units = int((gcount * gtiles).sum() + (n_priv * ptiles).sum()) * n_kv_heads  # (chunk, tile, head) loads
        if n_priv.sum() == 0:
            # Chunk-first work only (no private chunks): about one unit per SM, pieces rounded up to a power of two
            # (so 2^k-chunk prefixes split evenly). Every piece adds a fp32 partial row per query row, and merging
            # many partials a sequence costs more than the balance of finer units buys: measured on the H200, c4
            # B16 H16 P16K, pieces of 4/8/16/32 chunks ran 64.4/56.0/51.6/50.3 us (data/h200/dev/s14_c4gap).
            max_chunks = 1 << max(0, math.ceil(units / (units_target or n_sm)) - 1).bit_length()
        else:
            max_chunks = max(1, math.ceil(units / (units_target or 8 * n_sm)))
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")

    rows_items = []  # (nc, kind, array (k, ITEM_INTS))
    merge_seq, merge_prow = [], []
    out = 0
    # chunk-first pieces. A piece writes (and the merge reads) one fp32 row per stacked query row: per kv-head about
    # rows·D·8 bytes against the piece's mc·chunk·D·4 bytes of K/V, so a group of many rows gets pieces of at least
    # rows/8 chunks (partial traffic <= 1/4 of its K/V at chunk 64); row tiles already give it parallelism.
    # (Measured on the H100, 128 seqs x 64 shared chunks: pieces of 6 chunks 129 µs, of 16 chunks 108 µs.)
    group_mc = np.maximum(max_chunks, -(-grows // 8)) if fixed_mc is None else np.full(len(grows), max_chunks)
    gp = -(-gcount // group_mc)
    pg, pbeg, pcnt = _split(gcount, gp)
    pout = out + np.cumsum(gseqs[pg]) - gseqs[pg]  # each piece owns (end - start) partial rows
    out += int(gseqs[pg].sum())
    n_cf_rows = out
    if len(pg):
        t_owner = np.repeat(np.arange(len(pg)), gtiles[pg])  # one item per (piece, row tile)
        tidx = np.arange(len(t_owner)) - np.repeat(np.cumsum(gtiles[pg]) - gtiles[pg], gtiles[pg])
        tile = ROWS_PER_CONSUMER * gnc[pg[t_owner]]
        it = np.stack([grow0[pg[t_owner]], tidx * tile, np.minimum(tile, grows[pg[t_owner]] - tidx * tile),
                       gstart[pg[t_owner]] + pbeg[t_owner], pcnt[t_owner], pout[t_owner],
                       np.full(len(t_owner), KIND_SHARED)], axis=1)
        nc_of = gnc[pg[t_owner]]
        for nc in (1, 2):
            rows_items.append((nc, KIND_SHARED, it[nc_of == nc]))
        merge_seq.append(np.repeat(grow0[pg], gseqs[pg]) + (np.arange(n_cf_rows) - np.repeat(pout, gseqs[pg])))
        merge_prow.append(np.arange(n_cf_rows))
    # sequence-first pieces
    sp = -(-n_priv // max_chunks)
    ps, pbeg2, pcnt2 = _split(n_priv, sp)
    prow = out + np.arange(len(ps))
    out += len(ps)
    if len(ps):
        t_owner = np.repeat(np.arange(len(ps)), ptiles[ps])  # one item per (piece, row tile of the G q-heads)
        tidx = np.arange(len(t_owner)) - np.repeat(np.cumsum(ptiles[ps]) - ptiles[ps], ptiles[ps])
        it = np.stack([ps[t_owner], tidx * ROWS_PER_CONSUMER,
                       np.minimum(ROWS_PER_CONSUMER, g - tidx * ROWS_PER_CONSUMER),
                       poff[ps[t_owner]] + pbeg2[t_owner], pcnt2[t_owner], prow[t_owner],
                       np.full(len(t_owner), KIND_PRIVATE)], axis=1)
        rows_items.append((1, KIND_PRIVATE, it))
        merge_seq.append(ps)
        merge_prow.append(prow)

    items, cf_items = {}, {}
    to_dev = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32)).to(device)  # noqa: E731
    empty = np.zeros((0, ITEM_INTS), dtype=np.int64)
    for nc in (1, 2):
        cf = np.concatenate([empty] + [a for n, k, a in rows_items if n == nc and k == KIND_SHARED])
        allv = np.concatenate([cf] + [a for n, k, a in rows_items if n == nc and k == KIND_PRIVATE])
        items[nc] = to_dev(allv[np.argsort(-allv[:, 4], kind="stable")])  # longest first (LPT over the grid)
        cf_items[nc] = to_dev(cf[np.argsort(-cf[:, 4], kind="stable")])
    mseq = np.concatenate(merge_seq) if merge_seq else np.zeros(0, dtype=np.int64)
    mrow = np.concatenate(merge_prow) if merge_prow else np.zeros(0, dtype=np.int64)
    morder = np.argsort(mseq, kind="stable")
    moff = np.zeros(n_seqs + 1, dtype=np.int64)
    moff[1:] = np.cumsum(np.bincount(mseq, minlength=n_seqs))
    n_cf = len(cf_items[1]) + len(cf_items[2])
    stats = {"cf_groups": len(gstart), "cf_items": n_cf, "sf_items": len(items[1]) + len(items[2]) - n_cf,
             "max_chunks": max_chunks, "partial_rows": out, "units": (len(items[1]) + len(items[2])) * n_kv_heads,
             "units_nc2": len(items[2]) * n_kv_heads}
    return ChunkWork(items=items, chunk_first_items=cf_items, cf_chunks=to_dev(sc), merge_offset=to_dev(moff),
                     merge_rows=to_dev(mrow[morder]), n_partial_rows=out, n_chunk_first_partial_rows=n_cf_rows,
                     max_chunks=max_chunks, stats=stats)


# ------------------------------------------------------------------------------------------------ the kernels
_OPS = None


def ops():
    """The kernel entry points (`chunk_attend`, `chunk_merge`) of the tkprefix extension (:mod:`tkprefix.build`, the
    one loader: kernels/chunk_attn compiled here, or prebuilt objects from $TKPREFIX_PREBUILT_OBJECTS)."""
    global _OPS
    if _OPS is None:
        from . import build

        ext = build.load_extension()
        if not getattr(ext, "has_chunk_ops", False):
            raise RuntimeError("the tkprefix extension was built without the chunk_attn family: "
                               "include chunk_attn in TKPREFIX_FAMILIES (or unset it)")
        _OPS = ext
    return _OPS


# ------------------------------------------------------------------------------------------------ public API
_WORK: dict = {}


def plan_work(cache, n_q_heads: int, max_chunks: int | None = None, wide_rows: int = 64) -> tuple:
    """(plan, ChunkWork) for the cache's current plan; the work is rebuilt only when the plan object changes."""
    plan = cache.plan()
    key = (id(plan), n_q_heads, max_chunks, wide_rows)
    hit = _WORK.get(key)
    if hit is not None and hit[0]() is plan:
        return plan, hit[1]
    for k in [k for k, (ref, _) in _WORK.items() if ref() is None]:
        del _WORK[k]
    n_sm = torch.cuda.get_device_properties(cache.k_pool.device).multi_processor_count
    work = build_work(plan, cache.n_heads, n_q_heads, cache.k_pool.device, n_sm=n_sm, max_chunks=max_chunks,
                      wide_rows=wide_rows)
    _WORK[key] = (weakref.ref(plan), work)
    return plan, work


def _check(q, cache, layer=0):
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"q must be a torch.Tensor, got {type(q).__name__}")
    if not q.is_cuda:
        raise ValueError(f"q must be a CUDA tensor for the TK ChunkAttention kernels, got device {q.device}")
    if q.dtype not in DTYPES:
        raise TypeError(f"q must be bfloat16 or float16 for the TK kernels, got {q.dtype}")
    if q.dim() != 3:
        raise ValueError(f"q must be (n_seqs, Hq, D), got shape {tuple(q.shape)}")
    cache._check_layer(layer)
    k_pool, v_pool = cache.k_pools[layer], cache.v_pools[layer]
    if k_pool.dtype != q.dtype or v_pool.dtype != q.dtype:
        raise TypeError(f"q dtype {q.dtype} must match the cache's pool dtype {k_pool.dtype}")
    if k_pool.device != q.device:
        raise ValueError(f"q must be on the cache's device {k_pool.device}, got {q.device}")
    if cache.chunk_size not in CHUNK_SIZES:
        raise ValueError(f"cache.chunk_size must be one of {CHUNK_SIZES} for the TK kernels, got {cache.chunk_size}")
    if q.shape[2] not in HEAD_DIMS or q.shape[2] != cache.d_head:
        raise ValueError(f"q head_dim must equal cache.d_head and be one of {HEAD_DIMS}, got {q.shape[2]}")
    if q.shape[1] % cache.n_heads:
        raise ValueError(f"q heads ({q.shape[1]}) must be a multiple of the cache's n_heads ({cache.n_heads})")
    if not (k_pool.is_contiguous() and v_pool.is_contiguous()):
        raise ValueError("cache.k_pool and cache.v_pool must be contiguous")
    for name, t in (("k_pool", k_pool), ("v_pool", v_pool)):
        if t.data_ptr() % 16:
            raise ValueError(f"cache.{name} must be 16-byte aligned (TMA)")


def _aligned(q):
    """Contiguous, 16-byte aligned q (the kernel gathers query rows with 16-byte loads)."""
    q = q.contiguous()
    return q if q.data_ptr() % 16 == 0 else q.clone()


def _launch_attend(q, cache, plan, work, part_o, part_lse, stream, chunk_first_only=False, max_blocks=0, layer=0):
    o = ops()
    for nc in (2, 1):
        items = (work.chunk_first_items if chunk_first_only else work.items)[nc]
        if items.shape[0]:
            o.chunk_attend(q, cache.k_pools[layer], cache.v_pools[layer], items, work.cf_chunks, plan.private_chunk,
                           plan.private_len, part_o, part_lse, nc, stream, max_blocks)


def chunk_attention(q: torch.Tensor, cache, return_lse: bool = False, max_chunks: int | None = None,
                    poison: float | None = None, wide_rows: int = 64, max_blocks: int = 0, layer: int = 0):
    """One decode step on a Hopper GPU: q (n_seqs, Hq, D) in `cache.seq_ids` order → o (n_seqs, Hq, D) in q's dtype
    (and lse (n_seqs, Hq) float32, natural log, if return_lse). Hq a multiple of cache.n_heads; D 64 or 128;
    bf16 or fp16; chunk_size 64. No host sync; capturable in a CUDA graph while the tree keeps its shape.

    max_chunks, wide_rows: work split (see `build_work`); max_blocks: grid cap (0: persistent, as many blocks as
    fit). poison: tests only -- fill the partial and output buffers with this value first, so that an unwritten
    row shows."""
    _check(q, cache, layer)
    n_seqs = cache.n_seqs
    if q.shape[0] != n_seqs:
        raise ValueError(f"q must have one row per sequence of the cache ({n_seqs}), got {q.shape[0]}")
    q = _aligned(q)
    plan, work = plan_work(cache, q.shape[1], max_chunks, wide_rows)
    stream = torch.cuda.current_stream(q.device).cuda_stream
    part_o = torch.empty((work.n_partial_rows, q.shape[1], q.shape[2]), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((work.n_partial_rows, q.shape[1]), dtype=torch.float32, device=q.device)
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:2], dtype=torch.float32, device=q.device) if return_lse else None
    if poison is not None:
        for t in (part_o, part_lse, out, lse):
            if t is not None:
                t.fill_(poison)
    _launch_attend(q, cache, plan, work, part_o, part_lse, stream, max_blocks=max_blocks, layer=layer)
    ops().chunk_merge(part_o, part_lse, work.merge_offset, work.merge_rows, out, lse, stream)
    return (out, lse) if return_lse else out


def chunk_first(q: torch.Tensor, cache, max_chunks: int | None = None, wide_rows: int = 64, max_blocks: int = 0):
    """The chunk-first phase alone (for measurement): (part_o, part_lse, work); rows past
    `work.n_chunk_first_partial_rows` are not written."""
    _check(q, cache)
    q = _aligned(q)
    plan, work = plan_work(cache, q.shape[1], max_chunks, wide_rows)
    stream = torch.cuda.current_stream(q.device).cuda_stream
    part_o = torch.empty((work.n_partial_rows, q.shape[1], q.shape[2]), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((work.n_partial_rows, q.shape[1]), dtype=torch.float32, device=q.device)
    _launch_attend(q, cache, plan, work, part_o, part_lse, stream, chunk_first_only=True, max_blocks=max_blocks)
    return part_o, part_lse, work
