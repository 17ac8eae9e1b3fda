"""ChunkAttention decode over a `ChunkKVCache`: chunk-first over shared chunks, then sequence-first with an LSE merge."""
from __future__ import annotations

import torch

from . import reference
from .backend import resolve_backend
from .cache import ChunkKVCache, ChunkPlan
from .validation import check_dim, check_gqa, check_tensor


def chunk_attention(q: torch.Tensor, cache: ChunkKVCache, backend: str = "auto", layer: int = 0) -> torch.Tensor:
    """One decode step: q (n_seqs, Hq, D) in `cache.seq_ids` order (Hq a multiple of cache.n_heads) → o, same shape;
    over the pools of `layer` (0 .. cache.n_layers - 1).

    Every argument is checked before the backend is chosen (the same error on every backend). The tk kernels take
    caches with chunk_size 64; `auto` runs `torch` for other chunk sizes, `tk` raises.

    >>> cache = ChunkKVCache(2, 16, chunk_size=4, dtype=torch.float32, capacity_chunks=8)
    >>> for tail in ([7], [8, 9]):
    ...     _ = cache.add_seq([1, 2, 3, 4] + tail, torch.randn(4 + len(tail), 2, 16), torch.randn(4 + len(tail), 2, 16))
    >>> chunk_attention(torch.randn(2, 4, 16), cache, backend="torch").shape
    torch.Size([2, 4, 16])
    """
    if not isinstance(cache, ChunkKVCache):
        raise TypeError(f"cache must be a ChunkKVCache, got {type(cache).__name__}")
    check_tensor("q", q, ndim=3)
    check_dim("q", q, 0, cache.n_seqs, "n_seqs, as len(cache.seq_ids)")
    cache._check_layer(layer)
    check_dim("q", q, 2, cache.d_head, "head_dim, as cache.d_head")
    check_gqa(q.shape[1], cache.n_heads, "q", "cache")
    if q.dtype != cache.dtype:
        raise TypeError(f"q must have the cache's dtype {cache.dtype}, got {q.dtype}")
    if q.device != cache.device:  # cache.device is normalized ("cuda" -> "cuda:<index>") at construction
        raise ValueError(f"q must be on the cache's device {cache.device}, got {q.device}")
    use_tk = resolve_backend(backend, q) == "tk"
    if use_tk and backend == "auto":
        from .tk_chunk import CHUNK_SIZES

        use_tk = cache.chunk_size in CHUNK_SIZES
    if q.shape[0] == 0:
        return q.clone()
    if use_tk:
        from . import tk_chunk

        return tk_chunk.chunk_attention(q, cache, layer=layer)
    return two_phase_torch(q, cache.k_pools[layer], cache.v_pools[layer], cache.plan())


def chunk_first_torch(q, k_pool, v_pool, plan: ChunkPlan):
    """Partials (n_partial_rows, Hq, D) fp32 and LSE (n_partial_rows, Hq): each shared chunk against its row range."""
    acc = reference.acc_dtype(q.dtype)
    partial_o = q.new_empty((plan.n_partial_rows, *q.shape[1:]), dtype=acc)
    partial_lse = q.new_empty((plan.n_partial_rows, q.shape[1]), dtype=acc)
    h = {name: plan.host[name].tolist() for name in ("shared_chunk", "shared_row_start", "shared_row_end",
                                                     "shared_partial_offset")}
    for i, chunk in enumerate(h["shared_chunk"]):
        start, end, offset = h["shared_row_start"][i], h["shared_row_end"][i], h["shared_partial_offset"][i]
        k, v = k_pool[chunk].transpose(0, 1)[None], v_pool[chunk].transpose(0, 1)[None]  # (1, C, H, D)
        stacked = q[start:end].to(acc)[None]  # all sharing sequences' queries as one (1, rows, Hq, D) matrix
        o, lse = reference.attention_with_lse(stacked, k, v)
        partial_o[offset : offset + end - start] = o[0]
        partial_lse[offset : offset + end - start] = lse[0]
    return partial_o, partial_lse


def two_phase_torch(q, k_pool, v_pool, plan: ChunkPlan):
    partial_o, partial_lse = chunk_first_torch(q, k_pool, v_pool, plan)
    acc = reference.acc_dtype(q.dtype)
    h = {name: plan.host[name].tolist() for name in ("seq_private_offset", "private_chunk", "seq_partial_offset",
                                                     "seq_partial_index")}
    h["private_len"] = plan.private_len.tolist()  # the device keeps the live lengths (one sync: the reference path)
    out = torch.empty_like(q)
    for row in range(plan.n_seqs):
        lo, hi = h["seq_private_offset"][row], h["seq_private_offset"][row + 1]
        chunks, lens = h["private_chunk"][lo:hi], h["private_len"][lo:hi]
        none = [k_pool.new_empty((0, *k_pool.shape[1:2], k_pool.shape[3]))]  # a sequence may have no private chunk
        k = torch.cat([k_pool[c, :, :n].transpose(0, 1) for c, n in zip(chunks, lens)] or none)
        v = torch.cat([v_pool[c, :, :n].transpose(0, 1) for c, n in zip(chunks, lens)] or none)
        o, lse = reference.attention_with_lse(q[row : row + 1, None].to(acc), k[None], v[None])
        o, lse = o[0, 0], lse[0, 0]  # (Hq, D), (Hq,)
        for p in h["seq_partial_index"][h["seq_partial_offset"][row] : h["seq_partial_offset"][row + 1]]:
            o, lse = reference.merge_states(o, lse, partial_o[p], partial_lse[p])
        out[row] = o.to(q.dtype)
    return out
