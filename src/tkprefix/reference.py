"""Exact PyTorch attention with log-sum-exp: the `torch` backend and the float64 oracle of every test.

Everything here is plain softmax attention written out (no fused kernel), so it runs on CPU and GPU in any float dtype.
Accumulation is float32 (float64 for float64 inputs); outputs take the input dtype, LSE stays in the accumulation dtype.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def attention_with_lse(q, k, v, visible=None):
    """softmax(q kᵀ/√D) v with its LSE.

    q (B, Nq, Hq, D); k, v (B, S, Hkv, D); visible: bool (B, Nq, S) or None (all visible).
    Returns o (B, Nq, Hq, D) in q's dtype and lse (B, Nq, Hq) in the accumulation dtype.
    A query that sees no key gets o = 0 and lse = -inf.
    """
    acc = acc_dtype(q.dtype)
    kv_heads = k.shape[2]
    qg = rearrange(q.to(acc), "b n (h g) d -> b h g n d", h=kv_heads)
    scores = torch.einsum("bhgnd,bshd->bhgns", qg, k.to(acc)) / math.sqrt(q.shape[-1])
    if visible is not None:
        scores = scores.masked_fill(~visible[:, None, None], float("-inf"))
        # Slots past a sequence's length may hold stale memory (torch.empty caches): zero the values no query
        # sees, since a zero probability times NaN would still be NaN.
        v = v.masked_fill(~visible.any(dim=1)[:, :, None, None], 0)
    lse = torch.logsumexp(scores, dim=-1)  # -inf where nothing is visible
    probs = torch.exp(scores - torch.where(torch.isfinite(lse), lse, 0.0)[..., None])
    o = torch.einsum("bhgns,bshd->bhgnd", probs, v.to(acc))
    return (
        rearrange(o, "b h g n d -> b n (h g) d").to(q.dtype),
        rearrange(lse, "b h g n -> b n (h g)"),
    )


def prefix_attention(q, k, v):
    """Hydragen's shared level: the queries of all sequences that share a prefix row are stacked into one matrix."""
    batch, prefix_rows = q.shape[0], k.shape[0]
    stacked = rearrange(q, "(p r) n h d -> p (r n) h d", p=prefix_rows)
    o, lse = attention_with_lse(stacked, k, v)
    return (
        rearrange(o, "p (r n) h d -> (p r) n h d", r=batch // prefix_rows),
        rearrange(lse, "p (r n) h -> (p r) n h", r=batch // prefix_rows),
    )


def decode_visibility(n_queries: int, cache_len: int, seq_len, batch: int, device) -> torch.Tensor:
    """bool (B, Nq, S): seq_len None → causal bottom-right aligned; else query sees keys < seq_len[b]."""
    keys = torch.arange(cache_len, device=device)
    if seq_len is None:
        last_visible = cache_len - n_queries + torch.arange(n_queries, device=device)  # query j sees 0..S-Nq+j
        return (keys[None, :] <= last_visible[:, None]).expand(batch, n_queries, cache_len)
    return (keys[None, None, :] < seq_len.to(device)[:, None, None]).expand(batch, n_queries, cache_len)


def decode_attention(q, k, v, seq_len=None):
    visible = decode_visibility(q.shape[1], k.shape[1], seq_len, q.shape[0], q.device)
    return attention_with_lse(q, k, v, visible)


def merge_states(o_a, lse_a, o_b, lse_b):
    """Exact merge of two attention states over disjoint key sets; -inf (empty) is the identity."""
    lse = torch.logaddexp(lse_a, lse_b)
    safe = torch.where(torch.isfinite(lse), lse, 0.0)
    w_a, w_b = torch.exp(lse_a - safe)[..., None], torch.exp(lse_b - safe)[..., None]
    acc = acc_dtype(o_a.dtype)
    return (o_a.to(acc) * w_a + o_b.to(acc) * w_b).to(o_a.dtype), lse


def hydragen_attention_nopad(q, k, v, shared_ks, shared_vs, seq_len=None):
    """Every shared level with `prefix_attention`, the unique part with `decode_attention`, merged by LSE.

    Merging happens in the accumulation dtype so that rounding the output happens once.
    """
    q_acc = q.to(acc_dtype(q.dtype))
    o, lse = decode_attention(q_acc, k, v, seq_len)
    for shared_k, shared_v in zip(shared_ks, shared_vs):
        o, lse = merge_states(o, lse, *prefix_attention(q_acc, shared_k, shared_v))
    return o.to(q.dtype)


def naive_attention(q, keys, values):
    """The oracle: per-sequence full KV (lists of (S_b, Hkv, D) tensors), float64, no decomposition at all."""
    out = []
    for b in range(q.shape[0]):
        o, _ = attention_with_lse(q[b : b + 1].double(), keys[b][None].double(), values[b][None].double())
        out.append(o[0])
    return torch.stack(out)
