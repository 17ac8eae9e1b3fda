"""Run one case: every implementation checked on the same inputs, then timed interleaved (eager and graph replay).

Per case:

1. fresh random inputs (seeded by the case index) and the float64 reference on a subsample of sequences;
2. per implementation: unavailable → row with the reason; predicted out-of-memory → ``oom``; prepare its layout
   (untimed); poison the allocator (the next output buffer of that size starts as NaN), run once, require every
   output element finite (written) and ``rel_err`` within tolerance on the subsample, else ``wrong: <error>``;
3. capture a CUDA graph of each correct implementation and check the replay's output the same way;
4. time all correct (implementation, graph) runners interleaved with an L2 flush before each call; rows with median,
   p20, p80, n and the roofline columns.
"""

from __future__ import annotations

import gc
import math
import traceback
from typing import Any, Callable

import torch

from . import schema, stats
from .cases import Case
from .inputs import TOLERANCE, make_inputs, pick_rows, reference_rows, rel_err
from .peers import Prepared, Unsupported, forest_unavailable, get_impl, tree_reason
from .timing import L2Flusher, capture_graph, estimate_us, time_interleaved

# the note of rows timed one implementation at a time (cli_bench: after a hang in the case's interleaved timing)
ISOLATED_NOTE = "timed apart from the other implementations after a hang in this case's interleaved timing (bench.log)"

__all__ = ["run_case", "FatalCudaError", "is_fatal_cuda"]


class FatalCudaError(RuntimeError):
    """A CUDA error that poisons the process's context (illegal address, launch failure): the rows written so far
    stand, the process must exit and a fresh one continue (the supervisor in cli_bench does that)."""

    def __init__(self, impl: str | None, message: str) -> None:
        super().__init__(message)
        self.impl = impl


_FATAL = ("illegal memory access", "illegal instruction", "unspecified launch failure", "misaligned address",
          "device-side assert", "an illegal", "CUDA error: unknown error", "uncorrectable")


def is_fatal_cuda(e: BaseException) -> bool:
    text = str(e)
    return any(f in text for f in _FATAL)


def _poison_allocator(numel: int, dtype: torch.dtype, device: torch.device) -> None:
    """Leave a NaN-filled block of the output's size in PyTorch's caching allocator: an implementation that allocates
    its output and leaves elements unwritten then shows NaN there (checked by :func:`_check`)."""
    if dtype.is_floating_point:
        t = torch.empty(numel, dtype=dtype, device=device)
        t.fill_(float("nan"))
        del t


def _check(out: torch.Tensor, case: Case, rows: list[int], ref: torch.Tensor) -> tuple[float | None, str | None]:
    """(rel_err, None) if correct, else (rel_err or None, error message)."""
    want = (case.batch, case.q_heads, case.head_dim)
    if tuple(out.shape) != want:
        return None, f"output shape {tuple(out.shape)}, expected {want}"
    finite = torch.isfinite(out)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        return None, f"{bad} of {out.numel()} output elements not finite (unwritten or NaN/inf)"
    err = rel_err(out[rows], ref)
    tol = TOLERANCE[case.dtype]
    if not err <= tol:
        return err, f"rel_err {err:.3g} > tol {tol:g} vs float64 reference on rows {rows}"
    return err, None


def _free() -> None:
    gc.collect()
    torch.cuda.empty_cache()


def run_case(case: Case, impls: list[str], graph_modes: list[bool], flusher: L2Flusher, ceilings: dict[str, float],
             *, seed: int = 0, reps: int = 30, min_reps: int = 10, time_budget_s: float = 2.0,
             log: Callable[[str], None] = print, run_id: str = "",
             skip: dict[str, str] | None = None, isolate: bool = False,
             progress: Callable[[str | None, str], None] | None = None) -> list[dict[str, Any]]:
    """All rows of one case (one per implementation and graph mode).

    skip: impl -> reason; a reason starting with ``wrong:`` (e.g. a hang seen by the supervisor) is the row's status
    as given, any other becomes ``unavailable: <reason>``. progress(impl, stage) is called before every step that
    runs device code, so a supervisor can tell which implementation hung. isolate: time each implementation's
    runners apart from the others' (after a hang in this case's interleaved timing, which names no implementation);
    its rows say so in their note."""
    prog = progress or (lambda impl, stage: None)
    dev = torch.device("cuda")
    base = case.base_row()
    base["run_id"] = run_id
    roof = stats.roofline_us(case.unique_bytes, case.flops, ceilings["copy_bw_bytes_per_s"],
                             ceilings["gemm_flops_per_s"])
    base["roofline_us"] = roof
    base["floor_us"] = stats.floor_us(case.unique_bytes, case.flops, ceilings)  # None: ceilings without the floor
    rows_out: list[dict[str, Any]] = []

    def row(impl: str, graph: bool, status: str, **kw: Any) -> dict[str, Any]:
        r = dict(base, impl=impl, graph=int(graph), status=status, **schema.NO_TIMING, note="")
        r.update(kw)
        rows_out.append(r)
        return r

    prog(None, "inputs")
    try:
        inp = make_inputs(case, dev, seed=seed)
    except torch.cuda.OutOfMemoryError:
        for name in impls:
            for g in graph_modes:
                row(name, g, "oom", note="inputs do not fit")
        _free()
        return rows_out
    check_rows = pick_rows(case.batch, 4, seed)
    ref = reference_rows(case, inp, check_rows)
    out_dtype = inp.q.dtype

    prepared: dict[str, Prepared] = {}
    errs: dict[str, float] = {}
    runners: dict[tuple[str, bool], Callable[[], object]] = {}
    graphs: list[Any] = []
    for name in impls:
        impl = get_impl(name)
        reason = ((skip or {}).get(name) or forest_unavailable(impl, case) or tree_reason(impl, case)
                  or impl.unavailable_reason(case))
        if reason:
            status = reason if reason.startswith("wrong: ") else schema.unavailable(reason)
            for g in graph_modes:
                row(name, g, status)
            continue
        need = impl.extra_bytes(case)
        free, _total = torch.cuda.mem_get_info()
        if need > 0.9 * free:
            for g in graph_modes:
                row(name, g, "oom", note=f"needs {need / 1e9:.1f} GB, {free / 1e9:.1f} GB free (not attempted)")
            continue
        prog(name, "prepare + correctness run")
        try:
            p = impl.prepare(case, inp)
            _poison_allocator(case.batch * case.q_heads * case.head_dim, out_dtype, dev)
            out = p.canonical(p.run())
            torch.cuda.synchronize()
            err, msg = _check(out, case, check_rows, ref)
            del out
        except Unsupported as e:
            for g in graph_modes:
                row(name, g, schema.unavailable(f"unsupported case: {e}"))
            _free()
            continue
        except torch.cuda.OutOfMemoryError:
            for g in graph_modes:
                row(name, g, "oom")
            _free()
            continue
        except Exception as e:  # noqa: BLE001 - any failure of a peer is a row, never a crash
            log(f"[{name}] {case.label()}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
            if is_fatal_cuda(e):
                raise FatalCudaError(name, f"{type(e).__name__}: {e}") from e
            for g in graph_modes:
                row(name, g, schema.wrong(f"{type(e).__name__}: {e}"))
            _free()
            continue
        if msg:
            for g in graph_modes:
                row(name, g, schema.wrong(msg), rel_err=err)
            del p
            _free()
            continue
        prepared[name] = p
        errs[name] = err  # type: ignore[assignment]
        for g in graph_modes:
            if not g:
                runners[(name, False)] = p.run
                continue
            if not p.graph_ok:
                row(name, True, schema.unavailable("not graph-capturable (host-side work per call)"))
                continue
            prog(name, "graph capture + replay check")
            try:
                graph, gout = capture_graph(p.run)
                graph.replay()
                torch.cuda.synchronize()
                gerr, gmsg = _check(p.canonical(gout), case, check_rows, ref)
                if gmsg:
                    row(name, True, schema.wrong("graph replay: " + gmsg), rel_err=gerr)
                    continue
                graphs.append((graph, gout))
                runners[(name, True)] = graph.replay
            except Exception as e:  # noqa: BLE001
                if is_fatal_cuda(e):
                    raise FatalCudaError(name, f"graph replay: {type(e).__name__}: {e}") from e
                row(name, True, schema.unavailable(f"CUDA graph capture failed: {type(e).__name__}: {e}"))
                torch.cuda.synchronize()

    # one interleaved group of every runner, or (isolate) one group per implementation: its eager and graph runners
    groups = [{k: f for k, f in runners.items() if k[0] == name} for name in prepared] if isolate else [runners]
    for group in filter(None, groups):
        who = next(iter(group))[0] if isolate else None
        prog(who, "interleaved timing of " + ", ".join(f"{n}{'/graph' if g else ''}" for n, g in group))
        try:
            est = sum(estimate_us(fn) + 90.0 for fn in group.values())  # + ~90 µs for each 256 MiB flush
            n = int(max(min_reps, min(reps, math.floor(time_budget_s * 1e6 / max(est, 1.0)))))
            samples = time_interleaved(group, n, flusher)
            for (name, g), xs in samples.items():
                q = stats.quantiles(xs)
                note = "; ".join(x for x in (prepared[name].note, ISOLATED_NOTE if isolate else "") if x)
                row(name, g, "ok", median_us=q.median, p20_us=q.p20, p80_us=q.p80, n=q.n, rel_err=errs[name],
                    pct_roofline=stats.pct_of_roofline(roof, q.median), note=note,
                    tflops=case.flops / q.median / 1e6, gbps=case.unique_bytes / q.median / 1e3,
                    **prepared[name].extra)
        except Exception as e:  # noqa: BLE001
            log(f"timing {case.label()}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
            if is_fatal_cuda(e):
                raise FatalCudaError(who, f"timing: {type(e).__name__}: {e}") from e
            for (name, g) in group:
                row(name, g, schema.wrong(f"timing failed: {type(e).__name__}: {e}"))
    del graphs, runners, prepared, inp, ref
    _free()
    order = {n: i for i, n in enumerate(impls)}
    rows_out.sort(key=lambda r: (order.get(r["impl"], 99), r["graph"]))
    return rows_out
