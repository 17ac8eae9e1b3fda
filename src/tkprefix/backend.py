"""Which implementation runs an op: `torch` (exact PyTorch, anywhere) or `tk` (ThunderKittens kernels on a Hopper GPU, sm_90)."""
from __future__ import annotations

import torch

BACKENDS = ("auto", "tk", "torch")
TK_DTYPES = (torch.bfloat16, torch.float16)
TK_HEAD_DIMS = (64, 128)


_tk_ready = False  # once the prerequisites held, they hold for the process: skip re-checking them on every call


def tk_status() -> tuple[bool, str]:
    """(available, reason): the extension can be built or loaded and an sm_90 GPU is present.

    A positive answer is remembered (the check looks for nvcc and TK on disk, too slow for every decode call);
    a negative one is not, so setting THUNDERKITTENS_ROOT later in the process still takes effect."""
    global _tk_ready
    if _tk_ready:
        return True, ""
    try:
        from . import build
    except ImportError as exc:  # the kernel build module is missing from this install
        return False, f"tkprefix.build cannot be imported: {exc}"
    ok, reason = build.is_available()
    _tk_ready = ok
    return ok, reason


def resolve_backend(backend: str, q: torch.Tensor) -> str:
    """Map "auto" to "tk" where the TK path supports these inputs, else "torch"; check an explicit "tk"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    supported = q.is_cuda and q.dtype in TK_DTYPES and q.shape[-1] in TK_HEAD_DIMS
    if backend == "auto":
        return "tk" if supported and tk_status()[0] else "torch"
    if not q.is_cuda:
        raise ValueError(f"backend='tk' needs CUDA tensors on a Hopper GPU (sm_90), got q on {q.device}")
    if q.dtype not in TK_DTYPES:
        raise TypeError(f"backend='tk' needs q of dtype bfloat16 or float16, got {q.dtype}")
    if q.shape[-1] not in TK_HEAD_DIMS:
        raise ValueError(f"backend='tk' supports head_dim 64 or 128, got {q.shape[-1]}")
    ok, reason = tk_status()
    if not ok:
        raise RuntimeError(f"backend='tk' is unavailable: {reason}")
    return "tk"
