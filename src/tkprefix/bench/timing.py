"""GPU timing: CUDA events, L2 flush between timed calls, CUDA-graph capture, interleaved runs, the two ceilings.

Method (BENCHMARKS.md): warm up first; before every timed call write a >= 256 MB buffer so no input is served from
L2 (50 MB on the H100); time each call alone between two CUDA events on the current stream; interleave the
implementations (rep 0 of every implementation, then rep 1, ...) so clock or thermal drift hits all alike; report
median, p20, p80 and n.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable

import torch

from .stats import quantiles

__all__ = ["L2Flusher", "capture_graph", "time_interleaved", "measure_ceilings", "measure_flush_floor", "estimate_us"]


class L2Flusher:
    """Writes a buffer of ``nbytes`` (default 256 MiB, > 5× the H100's 50 MB L2) to evict inputs from L2."""

    def __init__(self, nbytes: int = 256 << 20, device: str | torch.device = "cuda") -> None:
        if nbytes < 256 << 20:
            raise ValueError(f"nbytes: the L2 flush must write at least 256 MiB, got {nbytes}")
        self.buf = torch.empty(nbytes, dtype=torch.uint8, device=device)
        self.value = 0

    def flush(self) -> None:
        self.value = (self.value + 1) % 251
        self.buf.fill_(self.value)

    def flush_clean(self) -> None:
        """The flush, then a read of the buffer's first 128 MiB (evicted by the write, so every read misses), which
        evicts the dirty lines the write left in L2: for measuring what those cost (`measure_flush_floor`), not for
        timing (the method's flush is `flush`)."""
        self.flush()
        self.buf[: 128 << 20].view(torch.int32).sum()


def capture_graph(fn: Callable[[], object], warmup: int = 2) -> tuple[torch.cuda.CUDAGraph, object]:
    """Capture ``fn`` (after ``warmup`` runs on a side stream, as PyTorch requires the first time) into a CUDA graph;
    ``warmup=0`` captures again a function that has run before.

    Returns the graph and the output tensor(s) it writes on every replay. Tensors that ``fn`` uses but did not allocate
    during the capture must outlive the graph: each capture empties the allocator's cache, so the memory of a freed
    one can be unmapped and a replay then faults (data/h200/dev/s19_prefix_wide)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    torch.cuda.synchronize()
    return g, out


def estimate_us(fn: Callable[[], object], reps: int = 3) -> float:
    """Rough per-call time (µs) after one warm-up call, no flush: used only to size the repetition count."""
    fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) * 1e3 / reps


def time_interleaved(
    runners: dict[Hashable, Callable[[], object]], n: int, flusher: L2Flusher, warmup: int = 2
) -> dict[Hashable, list[float]]:
    """Time every runner ``n`` times, interleaved, each call alone between CUDA events after an L2 flush.

    Returns µs samples per runner key. The flush is outside the events; events of one call are recorded on the
    current stream right around it, so the sample is the device time of that call (launch gaps included)."""
    if n <= 0:
        raise ValueError(f"n: need at least one repetition, got {n}")
    keys = list(runners)
    for _ in range(warmup):
        for k in keys:
            runners[k]()
    torch.cuda.synchronize()
    events = {k: [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
              for k in keys}
    for i in range(n):
        order = keys if i % 2 == 0 else keys[::-1]  # alternate the order so no runner always follows the flush
        for k in order:
            flusher.flush()
            start, end = events[k][i]
            start.record()
            runners[k]()
            end.record()
    torch.cuda.synchronize()
    return {k: [s.elapsed_time(e) * 1e3 for s, e in events[k]] for k in keys}


def measure_ceilings(device: str | torch.device = "cuda", copy_bytes: int = 2 << 30, gemm_n: int = 8192,
                     reps: int = 20) -> dict[str, float]:
    """The two ceilings of the roofline, measured now on this GPU.

    * copy bandwidth: ``dst.copy_(src)`` of ``copy_bytes`` (default 2 GiB), bytes read + written per second,
    * bf16 GEMM rate: ``gemm_n``³ product of random bf16 matrices (cuBLAS through torch), FLOP/s.
    Both are medians over ``reps`` timed calls after warm-up. The dict also holds `measure_flush_floor`'s keys."""
    t0 = time.time()
    src = torch.randint(0, 255, (copy_bytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)

    def one(fn: Callable[[], object]) -> list[float]:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        out = []
        for _ in range(reps):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            out.append(e0.elapsed_time(e1) * 1e-3)
        return out

    copy_s = quantiles(one(lambda: dst.copy_(src)))
    mats = [torch.randn(gemm_n, gemm_n, device=device, dtype=torch.bfloat16) for _ in range(2)]
    gemm_s = quantiles(one(lambda: mats[0] @ mats[1]))
    src = dst = None
    mats.clear()
    torch.cuda.empty_cache()
    flops = 2.0 * gemm_n**3
    return measure_flush_floor(device) | {
        "copy_bytes": float(copy_bytes),
        "copy_bw_bytes_per_s": 2.0 * copy_bytes / copy_s.median,
        "copy_bw_p20": 2.0 * copy_bytes / copy_s.p80,
        "copy_bw_p80": 2.0 * copy_bytes / copy_s.p20,
        "gemm_n": float(gemm_n),
        "gemm_flops_per_s": flops / gemm_s.median,
        "gemm_flops_p20": flops / gemm_s.p80,
        "gemm_flops_p80": flops / gemm_s.p20,
        "reps": float(reps),
        "seconds": time.time() - t0,
    }


FLUSH_TAX_MIB = (8, 16, 32, 64, 128, 256)


def measure_flush_floor(device: str | torch.device = "cuda", sizes_mib: tuple[int, ...] = FLUSH_TAX_MIB,
                        reps: int = 20) -> dict[str, float]:
    """What the method's L2 flush adds to the call timed after it, measured now (docs/design.md, "The floor under
    the method"; data/h200/dev/s18_flush_tax).

    The flush writes 256 MiB, so L2 ends full of the flusher's dirty lines; the timed call's misses evict them, and
    their write-back shares DRAM with the call's own reads. Per size b: a CUDA graph of ``torch.sum`` over b bytes,
    timed after the flush and after the flush plus a 128 MiB read that evicts those lines first (interleaved,
    medians); ``flush_tax_us_<b>mib`` is the difference. ``launch_floor_us``: a graph of one single-element kernel
    timed after the flush (the launch, one DRAM round trip and the events around it)."""
    flusher = L2Flusher(device=device)

    def samples_us(graph: torch.cuda.CUDAGraph, before: Callable[[], None]) -> list[float]:
        pairs = []
        for _ in range(reps):
            before()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            graph.replay()
            e1.record()
            pairs.append((e0, e1))
        torch.cuda.synchronize()
        return [a.elapsed_time(b) * 1e3 for a, b in pairs]

    tiny = torch.zeros(1, device=device)
    g, _ = capture_graph(lambda: tiny.add_(1))
    out = {"launch_floor_us": quantiles(samples_us(g, flusher.flush)).median}
    for mib in sizes_mib:
        x = torch.ones(mib << 19, dtype=torch.bfloat16, device=device)  # mib MiB of bf16
        g, _ = capture_graph(lambda: x.sum())
        dirty, clean = [], []
        for i in range(2):  # alternate the order, as time_interleaved does
            for before, xs in ((flusher.flush, dirty), (flusher.flush_clean, clean))[:: 1 - 2 * i]:
                xs += samples_us(g, before)
        out[f"flush_tax_us_{mib}mib"] = quantiles(dirty).median - quantiles(clean).median
        del x, g
    del flusher
    torch.cuda.empty_cache()
    return out
