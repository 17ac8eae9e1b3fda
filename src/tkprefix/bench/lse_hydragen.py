"""The Hydragen decomposition (``sdpa_hydragen``'s PyTorch code: one attention call per shared level with the queries
of every sharing sequence stacked, one for the suffixes, merged by LSE) over other LSE-returning attention kernels.
These are not upstream Hydragen (ScalingIntelligence/hydragen needs flash-attn 2, absent on the GPU machine).

* ``cudnn_hydragen``: cuDNN's fused attention through ``torch.ops.aten._scaled_dot_product_cudnn_attention`` with
  ``compute_log_sumexp`` (ships with torch; a different kernel from the FlashAttention-2 of ``sdpa_hydragen``).
* ``fa4_hydragen``: FlashAttention-4 (PyPI ``flash-attn-4``, CuTe DSL: ``flash_attn.cute.flash_attn_func`` with
  ``return_lse``), where it is installed. It cannot be carried to the GPU machine: see :data:`FA4_NOT_CARRIED`.
"""
from __future__ import annotations

import importlib

import torch

from . import peers
from .cases import Case
from .peers import SdpaHydragen

__all__ = ["CudnnHydragen", "Fa4Hydragen", "FA4_NOT_CARRIED"]

# Measured on 2026-12-01 with `pip download --no-deps` for Python 3.12 / manylinux x86-64:
FA4_NOT_CARRIED = (
    "flash-attn-4 is not installed: it cannot be carried to the GPU machine (one run takes 64 MiB). "
    "flash-attn-4 4.0.0b36 (528,175 B) needs nvidia-cutlass-dsl 4.8.1 (10,510 B), nvidia-cutlass-dsl-libs-base "
    "4.8.1 (3,050,567 B) and, for torch cu130, nvidia-cutlass-dsl-libs-cu13 4.8.1 (91,954,433 B: its MLIR "
    "library _cutlass_ir.cu13 is 193,177,432 B unpacked), plus quack-kernels 0.6.5 (729,615 B) and "
    "torch-c-dlpack-ext 0.1.5 (897,846 B): 97.2 MB of wheels, the cu13 one alone 1.37x the limit")


class CudnnHydragen(SdpaHydragen):
    name = "cudnn_hydragen"
    contiguous_suffix = True  # cuDNN's attention takes dense (B, H, S, D) operands; this peer's cache holds them so
    note = "Hydragen decomposition over cuDNN fused attention (not upstream Hydragen)"

    def unavailable_reason(self, case: Case) -> str | None:
        if not hasattr(torch.ops.aten, "_scaled_dot_product_cudnn_attention"):
            return f"torch {torch.__version__} has no aten._scaled_dot_product_cudnn_attention"
        if not torch.backends.cudnn.is_available():
            return "cuDNN is not available to this torch"
        if case.dtype not in ("bfloat16", "float16"):
            return "cuDNN fused attention takes bf16/fp16 only"
        return None

    def attn_with_lse(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        out = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, 0.0, False, False)
        lse = out[1]
        if lse.dim() == 4:  # some versions return (N, H, M, 1)
            lse = lse.squeeze(-1)
        return out[0], lse.float()


class Fa4Hydragen(SdpaHydragen):
    name = "fa4_hydragen"
    contiguous_suffix = True
    note = "Hydragen decomposition over FlashAttention-4 (CuTe DSL; not upstream Hydragen)"

    def unavailable_reason(self, case: Case) -> str | None:
        try:
            importlib.import_module("flash_attn.cute")
        except Exception as e:  # noqa: BLE001 - absent or broken: the row says which
            if isinstance(e, ModuleNotFoundError):
                return FA4_NOT_CARRIED
            return f"flash_attn.cute (flash-attn-4) not importable ({type(e).__name__}: {e})"
        if case.dtype not in ("bfloat16", "float16"):
            return "FlashAttention-4 takes bf16/fp16 only"
        return None

    def attn_with_lse(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        from flash_attn.cute import flash_attn_func  # type: ignore

        # FlashAttention's layout is (N, L, H, D); ours (N, H, L, D)
        o, lse = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), return_lse=True)
        return o.transpose(1, 2), lse.float()


for _impl in (CudnnHydragen(), Fa4Hydragen()):
    peers.REGISTRY[_impl.name] = _impl
