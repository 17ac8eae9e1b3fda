"""Argument checks shared by every public function: each failure names the argument and what was expected."""
from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def check_tensor(name: str, t, *, ndim: int | None = None, dtypes=FLOAT_DTYPES) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if dtypes is not None and t.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype in ({names}), got {str(t.dtype).replace('torch.', '')}")
    return t


def check_like(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor, *, dtype: bool = True) -> None:
    """`t` must live on `ref`'s device (and have its dtype)."""
    if t.device != ref.device:
        raise ValueError(f"{name} must be on the same device as {ref_name} ({ref.device}), got {t.device}")
    if dtype and t.dtype != ref.dtype:
        raise TypeError(f"{name} must have the same dtype as {ref_name} ({ref.dtype}), got {t.dtype}")


def check_dim(name: str, t: torch.Tensor, dim: int, expected: int, what: str) -> None:
    if t.shape[dim] != expected:
        raise ValueError(f"{name}.shape[{dim}] ({what}) must be {expected}, got {t.shape[dim]} (shape {tuple(t.shape)})")


def check_gqa(q_heads: int, kv_heads: int, q_name: str = "q", kv_name: str = "k") -> int:
    """Returns the group size Hq // Hkv."""
    if kv_heads < 1 or q_heads % kv_heads != 0:
        raise ValueError(
            f"{q_name} has {q_heads} heads, which must be a multiple of {kv_name}'s {kv_heads} kv-heads (GQA)"
        )
    return q_heads // kv_heads


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_name: str = "k", v_name: str = "v"):
    """q (B, Nq, Hq, D); k, v (Bk, S, Hkv, D). Returns (B, Nq, Hq, D, Bk, S, Hkv)."""
    check_tensor("q", q, ndim=4)
    check_tensor(k_name, k, ndim=4)
    check_tensor(v_name, v, ndim=4)
    check_like(k_name, k, "q", q)
    check_like(v_name, v, "q", q)
    if k.shape != v.shape:
        raise ValueError(f"{k_name} and {v_name} must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    B, Nq, Hq, D = q.shape
    if D < 1:
        raise ValueError(f"q head_dim must be positive, got {D}")
    check_dim(k_name, k, 3, D, "head_dim, as q's")
    check_gqa(Hq, k.shape[2], "q", k_name)
    if B < 1:
        raise ValueError(f"q batch must be at least 1, got {B}")
    return B, Nq, Hq, D, k.shape[0], k.shape[1], k.shape[2]


def check_seq_len(seq_len, batch: int, max_len: int, device: torch.device) -> torch.Tensor | None:
    if seq_len is None:
        return None
    check_tensor("seq_len", seq_len, ndim=1, dtypes=(torch.int32, torch.int64))
    if seq_len.shape[0] != batch:
        raise ValueError(f"seq_len must have shape ({batch},) (one length per sequence), got {tuple(seq_len.shape)}")
    if seq_len.device != device:
        raise ValueError(f"seq_len must be on q's device ({device}), got {seq_len.device}")
    return seq_len


def check_seq_len_values(seq_len: torch.Tensor | None, max_len: int, validate: bool = True) -> None:
    """seq_len values must lie in [0, max_len]: the same ValueError on every backend, before dispatch.

    This is the one device sync of an eager call with seq_len (one aminmax, one copy of two ints to the host). It is
    skipped with validate=False and inside CUDA-graph capture, where a sync cannot be recorded; there the values are
    the caller's promise, and a value outside [0, max_len] acts as the nearest end of that range on every backend."""
    if not isinstance(validate, bool):
        raise TypeError(f"validate must be True or False, got {validate!r}")
    if seq_len is None or not validate or seq_len.numel() == 0:
        return
    if seq_len.is_cuda and torch.cuda.is_current_stream_capturing():
        return
    lo, hi = torch.stack(torch.aminmax(seq_len)).tolist()
    if lo < 0 or hi > max_len:
        raise ValueError(f"seq_len values must lie in [0, {max_len}] (the cache length k.shape[1]), got [{lo}, {hi}]")
