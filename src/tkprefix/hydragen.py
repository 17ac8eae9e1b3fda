"""Hydragen (Juravsky et al. 2024): attention over shared prefixes as stacked-query matrix products + LSE merge.

Layouts follow upstream Hydragen, `(batch, tokens, heads, head_dim)`; LSE is natural-log, float32 (float64 for
float64 inputs), shape `(batch, tokens, q_heads)`. Each function takes `backend="auto" | "tk" | "torch"`.

One input contract (docs/design.md): every argument, including the values of `seq_len`, is checked here, before the
backend is chosen, so a bad input raises the same error type and message on every backend. `backend="tk"` can
raise beyond that only for inputs its kernels do not cover (CPU tensors, float32/float64, head_dim other than 64 or
128); `backend="auto"` then runs `torch`.
"""
from __future__ import annotations

import torch

from . import reference
from .backend import resolve_backend
from .validation import (
    check_attention_inputs, check_dim, check_like, check_seq_len, check_seq_len_values, check_tensor,
)


def _tk():
    from . import tk_hydragen

    return tk_hydragen


# `auto` where nothing is shared: sharing cannot pay, and one query per sequence over its whole cache runs as a plain
# decode, by PyTorch SDPA (its fused kernel; cuDNN's on the H200, torch 2.11) where that measured faster than TK's:
# q-heads per kv-head -> (at least this many keys, at least this many sequences x kv-heads). Other group sizes were
# not measured and stay on TK. Crossover table and command: data/h200/dev/auto_p0_s7/, docs/design.md "Auto-dispatch".
PLAIN_DECODE_BY_SDPA = {1: (256, 1), 4: (256, 128), 8: (256, 64)}


def plain_decode_by_sdpa(n_queries: int, q_heads: int, kv_heads: int, keys: int, shared_keys: int,
                         seq_len_given: bool, batch: int) -> bool:
    """Whether `backend="auto"` runs this attention as PyTorch SDPA rather than the TK kernels: nothing shared, one
    query per sequence that sees its whole cache (seq_len None), and a size where PLAIN_DECODE_BY_SDPA says so."""
    if shared_keys or seq_len_given or n_queries != 1 or q_heads % kv_heads:
        return False
    rule = PLAIN_DECODE_BY_SDPA.get(q_heads // kv_heads)
    return rule is not None and keys >= rule[0] and batch * kv_heads >= rule[1]


def sdpa_decode(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One query per sequence over all of its keys by PyTorch SDPA, the q-heads of a kv-head folded into query rows
    (as the harness's sdpa_naive): q (B, 1, Hq, D), k, v (B, S, Hkv, D) -> o (B, 1, Hq, D)."""
    B, _, Hq, D = q.shape
    Hkv = k.shape[2]
    o = torch.nn.functional.scaled_dot_product_attention(q.reshape(B, Hkv, Hq // Hkv, D), k.transpose(1, 2),
                                                         v.transpose(1, 2))
    return o.reshape(B, 1, Hq, D)


def prefix_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto"):
    """Non-causal attention of every query against a shared prefix.

    q (B, Nq, Hq, D); k, v (Bp, P, Hkv, D) with Bp dividing B: sequence b uses prefix row b // (B // Bp).
    Returns (o (B, Nq, Hq, D), lse (B, Nq, Hq)).

    >>> q = torch.randn(4, 1, 8, 64); k = v = torch.randn(1, 100, 2, 64)
    >>> o, lse = prefix_attention(q, k, v, backend="torch"); o.shape, lse.shape
    (torch.Size([4, 1, 8, 64]), torch.Size([4, 1, 8]))
    """
    batch, _, _, _, prefix_rows, _, _ = check_attention_inputs(q, k, v)
    if batch % prefix_rows:
        raise ValueError(f"k.shape[0] ({prefix_rows} prefix rows) must divide q.shape[0] (batch {batch})")
    if resolve_backend(backend, q) == "tk":
        return _tk().prefix_attention(q, k, v)
    return reference.prefix_attention(q, k, v)


def decode_attention(q, k, v, seq_len: torch.Tensor | None = None, backend: str = "auto", validate: bool = True):
    """Per-sequence attention over each sequence's own cache.

    q (B, Nq, Hq, D); k, v (B, S, Hkv, D). seq_len None: causal, aligned bottom-right (query j sees keys
    0 .. S-Nq+j); seq_len int tensor (B,) on q's device: every query of sequence b sees keys 0 .. seq_len[b]-1
    (0 = none: o = 0, lse = -inf); a value outside [0, S] raises ValueError. validate=False skips that value check
    (one device sync), as does CUDA-graph capture; see `validation.check_seq_len_values`. Returns (o, lse).
    """
    batch, n_queries, _, _, cache_batch, cache_len, _ = check_attention_inputs(q, k, v)
    check_dim("k", k, 0, batch, "batch, as q's")
    if seq_len is None and n_queries > cache_len:
        raise ValueError(f"with seq_len=None (causal) q's {n_queries} queries need k.shape[1] >= {n_queries}, got {cache_len}")
    check_seq_len(seq_len, batch, cache_len, q.device)
    check_seq_len_values(seq_len, cache_len, validate)
    if resolve_backend(backend, q) == "tk":
        return _tk().decode_attention(q, k, v, seq_len)
    return reference.decode_attention(q, k, v, seq_len)


def merge_states(o_a, lse_a, o_b, lse_b, backend: str = "auto"):
    """Exact merge of two attention states over disjoint keys: lse = logaddexp, o = Σ o_x·exp(lse_x − lse).

    o_* (..., D); lse_* (...) (float32, or float64). An empty state (lse = -inf) is the identity. The tk kernel
    merges 4-D states with float32 LSE; other ranks run `torch` on every backend, float64 LSE runs `torch` on `auto`.
    """
    check_tensor("o_a", o_a)
    check_tensor("o_b", o_b)
    check_tensor("lse_a", lse_a, dtypes=(torch.float32, torch.float64))
    check_tensor("lse_b", lse_b, dtypes=(torch.float32, torch.float64))
    check_like("o_b", o_b, "o_a", o_a)
    check_like("lse_a", lse_a, "o_a", o_a, dtype=False)
    check_like("lse_b", lse_b, "lse_a", lse_a)
    if o_a.shape != o_b.shape:
        raise ValueError(f"o_a and o_b must have the same shape, got {tuple(o_a.shape)} and {tuple(o_b.shape)}")
    for name, lse in (("lse_a", lse_a), ("lse_b", lse_b)):
        if lse.shape != o_a.shape[:-1]:
            raise ValueError(f"{name} must have shape {tuple(o_a.shape[:-1])} (o without head_dim), got {tuple(lse.shape)}")
    use_tk = resolve_backend(backend, o_a) == "tk" and o_a.dim() == 4
    if use_tk and (backend == "tk" or lse_a.dtype == torch.float32):
        return _tk().merge_states(o_a, lse_a, o_b, lse_b)
    return reference.merge_states(o_a, lse_a, o_b, lse_b)


def hydragen_attention_nopad(q, k, v, shared_ks, shared_vs, seq_len=None, backend: str = "auto",
                             validate: bool = True):
    """Drop-in for upstream Hydragen's function: shared levels + the unique part, merged exactly by LSE.

    q (B, Nq, Hq, D); k, v (B, S, Hkv, D) unique caches; shared_ks[i], shared_vs[i] (B_i, P_i, Hkv, D), B_i | B,
    sequence b uses row b // (B // B_i); every query sees every shared token. seq_len, validate: as in
    `decode_attention`. Returns o (B, Nq, Hq, D). With nothing shared, `auto` may run a plain PyTorch SDPA decode
    instead of the TK kernels, where that measured faster (`plain_decode_by_sdpa`).

    >>> B, H, D = 4, 8, 64
    >>> q = torch.randn(B, 1, H, D); k = v = torch.randn(B, 10, H, D)
    >>> system = torch.randn(1, 300, H, D); docs = torch.randn(2, 70, H, D)
    >>> hydragen_attention_nopad(q, k, v, [system, docs], [system, docs], backend="torch").shape
    torch.Size([4, 1, 8, 64])
    """
    batch, n_queries, _, _, _, cache_len, _ = check_attention_inputs(q, k, v)
    check_dim("k", k, 0, batch, "batch, as q's")
    if not isinstance(shared_ks, (list, tuple)) or not isinstance(shared_vs, (list, tuple)):
        raise TypeError("shared_ks and shared_vs must be lists of tensors (one per shared level)")
    if len(shared_ks) != len(shared_vs):
        raise ValueError(f"shared_ks and shared_vs must have one tensor per level each, got {len(shared_ks)} and {len(shared_vs)}")
    for i, (sk, sv) in enumerate(zip(shared_ks, shared_vs)):
        _, _, _, _, rows, _, _ = check_attention_inputs(q, sk, sv, f"shared_ks[{i}]", f"shared_vs[{i}]")
        if batch % rows:
            raise ValueError(f"shared_ks[{i}].shape[0] ({rows} prefix rows) must divide the batch {batch}")
        check_dim(f"shared_ks[{i}]", sk, 2, k.shape[2], "kv-heads, as k's")
    if seq_len is None and n_queries > cache_len:
        raise ValueError(f"with seq_len=None (causal) q's {n_queries} queries need k.shape[1] >= {n_queries}, got {cache_len}")
    check_seq_len(seq_len, batch, cache_len, q.device)
    check_seq_len_values(seq_len, cache_len, validate)
    if resolve_backend(backend, q) == "tk":
        if backend == "auto" and plain_decode_by_sdpa(
                n_queries, q.shape[2], k.shape[2], cache_len, sum(sk.shape[1] for sk in shared_ks),
                seq_len is not None, batch):
            return sdpa_decode(q, k, v)
        return _tk().hydragen_attention_nopad(q, k, v, list(shared_ks), list(shared_vs), seq_len)
    return reference.hydragen_attention_nopad(q, k, v, shared_ks, shared_vs, seq_len)
