"""``tkprefix bench``: run the sweeps of config/sweeps/ on this GPU → one CSV per configuration + provenance.json.

Example (on a Hopper GPU, from the repository root)::

    tkprefix bench --out results/live                 # every sweep file
    tkprefix bench --only c1 c5 --out results/debug   # configurations whose name starts with c1 or c5

Writes ``bench_<config>.csv`` (attention configurations), ``e2e.csv`` (configuration 6) and ``provenance.json``
(``tkprefix env`` + the two ceilings measured in this run + the sweeps as run and what was trimmed).

The process that parses these arguments measures the two ceilings and then runs each sweep in a child process under
:func:`tkprefix.bench.supervise.supervise`: a kernel that hangs (no progress for ``--hang-s`` seconds) or poisons the
CUDA context becomes a ``wrong: ...`` row for that implementation and case, and a fresh child goes on from there.
A hang while every implementation of a case is timed in turn names none of them: that case is then timed again one
implementation at a time (their rows say so), so that a second hang names its implementation.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import schema
from .cases import Sweep, load_sweeps
from .supervise import Progress, append_jsonl, read_jsonl, supervise

DEFAULT_SWEEPS = Path(__file__).resolve().parents[3] / "config" / "sweeps"
ATTN_COLUMNS = schema.COMMON_COLUMNS + schema.EXTRA_COLUMNS + ("case_index", "run_id")
E2E_COLUMNS = schema.E2E_COLUMNS + ("run_id",)


class _Progress:
    """Progress over the cases: a live rich bar on a terminal; one line per case otherwise (logs of GPU jobs)."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n, self.t0 = total, desc, 0, time.time()
        self._rich = None
        if sys.stderr.isatty():
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self._rich = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.fields[label]}"), transient=False)
                self._rich.start()
                self._task = self._rich.add_task(desc, total=total, label="")
            except ImportError:
                self._rich = None
        self.label = ""

    def set_postfix_str(self, label: str) -> None:
        self.label = label
        if self._rich is not None:
            self._rich.update(self._task, label=label)

    def update(self, k: int = 1) -> None:
        self.n += k
        if self._rich is not None:
            self._rich.update(self._task, advance=k)
        else:
            print(f"[{self.desc}] {self.n}/{self.total} {time.time() - self.t0:6.0f}s {self.label}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def _progress(total: int, desc: str) -> _Progress:
    return _Progress(total, desc)


def _case_rows(sweep: Sweep, i: int, status: str, run_id: str = "") -> list[dict[str, Any]]:
    """Rows of case i for every listed implementation and timing mode, all with ``status`` (no timing)."""
    case = sweep.cases[i]
    out = []
    for name in sweep.impls:
        for g in sweep.graph:
            r = case.base_row()
            r.update(impl=name, graph=int(g), status=status, **schema.NO_TIMING, roofline_us=None, case_index=i,
                     run_id=run_id)
            out.append(r)
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------ child
def _child(args: argparse.Namespace) -> int:
    """Run one sweep from --start-case on, appending finished rows to --rows and steps to --progress."""
    from .runner import FatalCudaError, run_case
    from .timing import L2Flusher

    sweeps = load_sweeps(args.sweeps, args.only)
    if len(sweeps) != 1:
        raise SystemExit(f"--child needs exactly one sweep, got {[s.config for s in sweeps]}")
    s = _apply_overrides(sweeps[0], args)
    ceilings = json.loads(Path(args.ceilings).read_text())
    skip: dict[str, str] = json.loads(Path(args.skip_json).read_text()) if args.skip_json else {}
    prog = Progress(args.progress)
    isolate = {int(c) for c in args.isolate_cases.split(",") if c}
    try:
        if s.kind == "e2e":
            from .e2e import run_e2e

            prog.step(case=0, impl=None, stage="start")
            if args.deadline_at and time.time() > args.deadline_at:
                rows = run_e2e(s, ceilings, run_id=args.run_id, log=_log, skip_reason="trimmed: the run's wall-clock "
                               "budget was spent before configuration 6")
            else:
                rows = run_e2e(s, ceilings, run_id=args.run_id, log=_log, skip=skip,
                               progress=lambda impl, stage: prog.step(case=0, impl=impl, stage=stage))
            append_jsonl(args.rows, rows)
            prog.step(case=0, impl=None, stage="done")
            return 0
        flusher = L2Flusher()
        bar = _progress(len(s.cases), s.config)
        bar.n = args.start_case
        for i in range(args.start_case, len(s.cases)):
            case = s.cases[i]
            prog.step(case=i, impl=None, stage="start")
            if args.deadline_at and time.time() > args.deadline_at:
                append_jsonl(args.rows, _case_rows(s, i, schema.unavailable(
                    "trimmed: the run's wall-clock budget was spent before this case"), args.run_id))
                bar.update(1)
                continue
            bar.set_postfix_str(case.label())
            case_skip = dict(s.skip)
            for scope in ("*", str(i)):  # a hang seen in this very case wins over "hung elsewhere"
                case_skip.update({k.split("|", 1)[1]: v for k, v in skip.items() if k.split("|", 1)[0] == scope})
            rows = run_case(case, s.impls, s.graph, flusher, ceilings, seed=args.seed + i, reps=s.reps,
                            min_reps=s.min_reps, time_budget_s=s.time_budget_s, log=_log, run_id=args.run_id,
                            skip=case_skip, isolate=i in isolate,
                            progress=lambda impl, stage, i=i: prog.step(case=i, impl=impl, stage=stage))
            for r in rows:
                r["case_index"] = i
            append_jsonl(args.rows, rows)
            prog.step(case=i, impl=None, stage="done")
            bar.update(1)
        bar.close()
    except FatalCudaError as e:
        prog.step(case=_last_case(args.progress), impl=e.impl, stage="fatal CUDA error", error=str(e))
        _log(f"[bench child] fatal CUDA error in {e.impl}: {e}; exiting so a fresh process continues")
        return 4
    return 0


def _last_case(progress_path: str) -> int:
    recs = read_jsonl(progress_path)
    return int(recs[-1]["case"]) if recs else 0


def _apply_overrides(s: Sweep, args: argparse.Namespace) -> Sweep:
    if args.impls:
        s.impls = list(args.impls)
    if args.reps:
        s.reps = args.reps
    if args.every > 1:
        s.cases = s.cases[:: args.every]
    return s


# ----------------------------------------------------------------------------------------------------------- parent
# implementation -> cases where it hung, across the whole run; after MAX_HANGS an implementation is not run again
_HANGS: dict[str, list[str]] = {}
MAX_HANGS = 2


def _run_sweep_supervised(s: Sweep, args: argparse.Namespace, out: Path, ceil_path: Path, run_id: str,
                          deadline_at: float) -> list[dict[str, Any]]:
    rows_path = out / f".rows_{s.config}.jsonl"
    prog_path = out / f".progress_{s.config}.jsonl"
    skip_path = out / f".skip_{s.config}.json"
    rows_path.unlink(missing_ok=True)
    skip: dict[str, str] = {}

    def hung_before(impl: str) -> str:
        return (f"wrong: not run: hung {len(_HANGS[impl])} times earlier in this run "
                f"({'; '.join(_HANGS[impl])}), see bench.log")

    for impl in _HANGS:
        if len(_HANGS[impl]) >= MAX_HANGS:
            skip[impl if s.kind == "e2e" else f"*|{impl}"] = hung_before(impl)
    extra_rows: list[dict[str, Any]] = []
    isolate: list[int] = []   # cases whose interleaved timing hung: timed again one implementation at a time
    start = 0
    for attempt in range(1, 30):
        schema.write_text(skip_path, json.dumps(skip))
        cmd = [sys.executable, "-m", "tkprefix.bench.cli_bench", "--child", "--sweeps", args.sweeps, "--only",
               s.config, "--start-case", str(start), "--skip-json", str(skip_path), "--rows", str(rows_path),
               "--progress", str(prog_path), "--ceilings", str(ceil_path), "--run-id", run_id, "--seed",
               str(args.seed), "--every", str(args.every), "--deadline-at", str(deadline_at)]
        if args.impls:
            cmd += ["--impls", *args.impls]
        if args.reps:
            cmd += ["--reps", str(args.reps)]
        if isolate:
            cmd += ["--isolate-cases", ",".join(map(str, isolate))]
        rc, last = supervise(cmd, prog_path, args.hang_s, log=_log)
        if rc == 0:
            break
        if last is None:
            _log(f"[bench] {s.config}: child exited rc={rc} before any progress; giving up on this sweep")
            break
        i, impl, stage = int(last.get("case", 0)), last.get("impl"), last.get("stage", "?")
        if rc is None:
            status = f"wrong: hang: no progress for {args.hang_s:.0f} s during {stage} (process killed)"
        else:
            status = schema.wrong(last.get("error") or f"process died (exit code {rc}) during {stage}")
        _log(f"[bench] {s.config}: case {i} impl {impl}: {status}; restarting (attempt {attempt + 1})")
        if rc is None and impl is not None:
            _HANGS.setdefault(impl, []).append(f"{s.config} case {i}")
        if s.kind == "e2e":
            if impl is None:
                break
            skip[impl] = status if len(_HANGS.get(impl, [])) < MAX_HANGS + 1 else hung_before(impl)
            rows_path.unlink(missing_ok=True)  # e2e rows are written at its end: start it over without impl
            start = 0
        elif impl is not None:
            skip[f"{i}|{impl}"] = status
            if len(_HANGS.get(impl, [])) >= MAX_HANGS:
                skip[f"*|{impl}"] = hung_before(impl)
            start = i
        elif rc is None and stage.startswith("interleaved timing") and i not in isolate:
            # a hang while all implementations ran in turn names none of them: time them again one at a time,
            # so that a second hang names its implementation and the others keep their timings
            isolate.append(i)
            start = i
        else:
            extra_rows += _case_rows(s, i, status, run_id)
            start = i + 1
            if start >= len(s.cases):
                break
    rows = read_jsonl(rows_path) + extra_rows
    if s.kind == "attention":
        have = {int(r["case_index"]) for r in rows}
        for i in range(len(s.cases)):
            if i not in have:
                rows += _case_rows(s, i, schema.unavailable("not run: the bench process for this sweep stopped "
                                                            "before this case (see bench.log)"), run_id)
        order = {n: k for k, n in enumerate(s.impls)}
        rows.sort(key=lambda r: (int(r["case_index"]), order.get(r["impl"], 99), int(r["graph"])))
    elif not rows:
        from .e2e import run_e2e

        rows = run_e2e(s, json.loads(ceil_path.read_text()), run_id=run_id, log=_log,
                       skip_reason="not run: the e2e process stopped (see bench.log)")
    for p in (prog_path, skip_path):
        p.unlink(missing_ok=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweeps", default=str(DEFAULT_SWEEPS), help="directory of sweep *.yaml files")
    ap.add_argument("--only", nargs="*", help="configuration names (or prefixes) to run")
    ap.add_argument("--out", default="results/live", help="output directory")
    ap.add_argument("--impls", nargs="*", help="override every sweep's implementation list")
    ap.add_argument("--reps", type=int, help="override the maximum repetitions per runner")
    ap.add_argument("--every", type=int, default=1, help="run every k-th case of each sweep (debug runs)")
    ap.add_argument("--deadline-s", type=float, default=0.0,
                    help="wall-clock budget for the whole run; cases past it become rows 'unavailable: trimmed ...'")
    ap.add_argument("--hang-s", type=float, default=40.0,
                    help="a child with no progress for this long is killed and its step reported as a hang")
    ap.add_argument("--seed", type=int, default=0)
    # child-process protocol (set by the parent)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start-case", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--skip-json", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    ap.add_argument("--progress", help=argparse.SUPPRESS)
    ap.add_argument("--ceilings", help=argparse.SUPPRESS)
    ap.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    ap.add_argument("--deadline-at", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--isolate-cases", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("tkprefix bench: no CUDA GPU visible; benchmarks need one (replay mode uses the recorded runs in data/).", file=sys.stderr)
        return 2
    if args.child:
        return _child(args)

    from .. import provenance
    from .timing import measure_ceilings

    t_start = time.time()
    deadline_at = t_start + args.deadline_s if args.deadline_s else 0.0
    out = schema.writable_dir(args.out)  # an unwritable folder fails now, with its name, not after the sweeps
    sweeps = [_apply_overrides(s, argparse.Namespace(impls=None, reps=None, every=args.every))
              for s in load_sweeps(args.sweeps, args.only)]
    run_id = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    print("[bench] measuring ceilings (copy bandwidth, bf16 8192^3 GEMM) ...", flush=True)
    ceilings = measure_ceilings()
    torch.cuda.empty_cache()
    print(f"[bench] copy {ceilings['copy_bw_bytes_per_s'] / 1e12:.3f} TB/s, "
          f"GEMM {ceilings['gemm_flops_per_s'] / 1e12:.1f} TFLOP/s", flush=True)
    ceil_path = out / ".ceilings.json"
    schema.write_text(ceil_path, json.dumps(ceilings))
    prov = provenance.collect()
    prov.update(run_id=run_id, ceilings=ceilings, command=["tkprefix", "bench", *(argv or sys.argv[1:])],
                sweeps={s.config: {"kind": s.kind, "cases": len(s.cases), "impls": s.impls, "graph": s.graph,
                                   "reps": s.reps, "min_reps": s.min_reps, "time_budget_s": s.time_budget_s,
                                   "description": s.description, "trimmed": s.trimmed, "skip": s.skip,
                                   "every": args.every}
                        for s in sweeps}, started_utc=run_id, deadline_s=args.deadline_s, hang_s=args.hang_s,
                run_notes=os.environ.get("TKPREFIX_RUN_NOTES", ""))
    schema.write_text(out / "provenance.json", json.dumps(prov, indent=2, sort_keys=True) + "\n")

    summary: list[str] = []
    # configuration 6 first (its model needs most of the memory, and its rows are the headline of issue 5), then the
    # attention sweeps by their priority, so that a deadline cuts the least important last
    for s in sorted(sweeps, key=lambda s: (s.kind != "e2e", s.priority, s.config)):
        if s.kind == "attention" and not s.cases:
            continue
        t0 = time.time()
        rows = _run_sweep_supervised(s, args, out, ceil_path, run_id, deadline_at)
        if s.kind == "e2e":
            schema.write_csv(out / "e2e.csv", rows, E2E_COLUMNS)
        else:
            schema.write_csv(out / f"bench_{s.config}.csv", rows, ATTN_COLUMNS)
        ok = sum(r["status"] == "ok" for r in rows)
        line = f"{s.config}: {len(rows)} rows, {ok} ok, {time.time() - t0:.0f} s"
        summary.append(line)
        print(f"[bench] {line}", flush=True)

    ceil_path.unlink(missing_ok=True)
    prov["finished_utc"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    prov["wall_s"] = time.time() - t_start
    schema.write_text(out / "provenance.json", json.dumps(prov, indent=2, sort_keys=True) + "\n")
    print("[bench] done in %.0f s:\n  %s" % (time.time() - t_start, "\n  ".join(summary)), flush=True)
    return 0


if __name__ == "__main__":  # the child processes start here
    from ..cli import run_command

    raise SystemExit(run_command("bench", main, sys.argv[1:]))
