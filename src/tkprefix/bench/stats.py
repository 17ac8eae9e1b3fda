"""Pure arithmetic of the harness: quantiles, unique bytes, FLOPs, roofline.

Nothing here touches a GPU, so all of it is tested on the CPU (tests/test_bench_stats.py).

Byte model (BENCHMARKS.md, "Roofline columns"): the fewest bytes any implementation must move through device memory
for one decode step of attention:

* every shared prefix level's K and V once per kv-head: ``n_rows · P · Hkv · D · 2 (K and V) · elem``,
* every sequence's own suffix K and V once: ``B · S · Hkv · D · 2 · elem``,
* the queries read once and the outputs written once: ``2 · B · Nq · Hq · D · elem``.

FLOP model: ``QKᵀ`` and ``PV`` each do ``B · Nq · Hq · N · D`` multiply-adds (``N`` = keys seen by a query), i.e.
``4 · B · Nq · Hq · N · D`` FLOPs in all. The roofline time is the larger of bytes / measured copy bandwidth and
FLOPs / measured bf16 GEMM rate; ``pct_roofline = 100 · roofline / median``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "Quantiles",
    "quantiles",
    "attention_unique_bytes",
    "attention_flops",
    "roofline_us",
    "pct_of_roofline",
    "dtype_bytes",
]

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8}


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype named as in the CSV (``bfloat16``, ``float16``, ``float32``, ``float64``)."""
    try:
        return _DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"dtype: expected one of {sorted(_DTYPE_BYTES)}, got {dtype!r}") from None


@dataclass(frozen=True)
class Quantiles:
    median: float
    p20: float
    p80: float
    n: int


def _quantile_sorted(xs: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default ``linear`` method)."""
    if not xs:
        raise ValueError("samples: need at least one sample")
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    return xs[lo] * (1.0 - frac) + xs[hi] * frac


def quantiles(samples: Sequence[float]) -> Quantiles:
    """Median, 20th and 80th percentile and count of ``samples`` (same definition as ``numpy.quantile``)."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        raise ValueError("samples: need at least one sample")
    if any(math.isnan(x) for x in xs):
        raise ValueError("samples: NaN in timing samples")
    return Quantiles(
        median=_quantile_sorted(xs, 0.5),
        p20=_quantile_sorted(xs, 0.2),
        p80=_quantile_sorted(xs, 0.8),
        n=len(xs),
    )


def attention_unique_bytes(
    *,
    batch: int,
    q_heads: int,
    kv_heads: int,
    head_dim: int,
    levels: Sequence[tuple[int, int]],
    suffix: int,
    n_queries: int = 1,
    dtype: str = "bfloat16",
) -> int:
    """Fewest bytes a shared-prefix decode step must move (see the module docstring).

    ``levels`` lists the shared prefix levels as ``(n_rows, length)``: level i has ``n_rows`` distinct prefixes of
    ``length`` tokens (``n_rows`` divides ``batch``).
    """
    e = dtype_bytes(dtype)
    for i, (rows, length) in enumerate(levels):
        if rows <= 0 or length < 0 or batch % rows:
            raise ValueError(f"levels[{i}]: need n_rows > 0 dividing batch={batch} and length >= 0, got {(rows, length)}")
    kv_token = kv_heads * head_dim * 2 * e  # K and V of one token, all kv-heads
    prefix = sum(rows * length for rows, length in levels) * kv_token
    own = batch * suffix * kv_token
    qo = 2 * batch * n_queries * q_heads * head_dim * e
    return int(prefix + own + qo)


def attention_flops(
    *, batch: int, q_heads: int, head_dim: int, keys_per_query: int, n_queries: int = 1
) -> int:
    """FLOPs of exact attention: ``4 · B · Nq · Hq · N · D`` (QKᵀ and PV, a multiply-add counted as two)."""
    return int(4 * batch * n_queries * q_heads * keys_per_query * head_dim)


def roofline_us(unique_bytes: float, flops: float, copy_bw_bytes_per_s: float, gemm_flops_per_s: float) -> float:
    """Lower bound on the time in µs: max(bytes / bandwidth, FLOPs / GEMM rate)."""
    if copy_bw_bytes_per_s <= 0 or gemm_flops_per_s <= 0:
        raise ValueError("ceilings: copy bandwidth and GEMM rate must be positive")
    return max(unique_bytes / copy_bw_bytes_per_s, flops / gemm_flops_per_s) * 1e6


def floor_us(unique_bytes: float, flops: float, ceilings: dict) -> float | None:
    """The least time a call can take under the method (docs/design.md, "The floor under the method"): a graph
    launch timed after the L2 flush (``launch_floor_us``), then max(FLOPs / GEMM rate, bytes / copy bandwidth + the
    write-back of the flusher's dirty lines that reading ``unique_bytes`` evicts). The write-back cost is
    ``flush_tax_us_<n>mib`` (`timing.measure_flush_floor`) interpolated linearly in bytes, from 0 at 0 bytes, and
    held at its last point beyond the largest size. None if the ceilings do not hold these measurements."""
    tax = sorted((int(k[len("flush_tax_us_"):-len("mib")]) << 20, float(v)) for k, v in ceilings.items()
                 if k.startswith("flush_tax_us_") and k.endswith("mib"))
    if "launch_floor_us" not in ceilings or not tax:
        return None
    sizes, us = zip((0, 0.0), *tax)
    writeback = max(0.0, float(np.interp(unique_bytes, sizes, us)))  # np.interp holds the last point beyond it
    roof = roofline_us(unique_bytes, 0, ceilings["copy_bw_bytes_per_s"], ceilings["gemm_flops_per_s"])
    return float(ceilings["launch_floor_us"]) + max(flops / ceilings["gemm_flops_per_s"] * 1e6, roof + writeback)


def pct_of_roofline(roofline: float, median_us: float) -> float:
    """``100 · roofline / median``: 100 means the implementation runs at the physical limit."""
    if median_us <= 0:
        raise ValueError(f"median_us: must be positive, got {median_us}")
    return 100.0 * roofline / median_us
