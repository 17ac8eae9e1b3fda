"""``tkprefix bench``: run the sweeps of config/sweeps/ on this GPU → one CSV per configuration + provenance.json.

Example (on an H100, from the repository root)::

    tkprefix bench --out results/h100                 # every sweep file
    tkprefix bench --only c1 c5 --out results/debug   # configurations whose name starts with c1 or c5

Writes ``bench_<config>.csv`` (attention configurations), ``e2e.csv`` (configuration 6) and ``provenance.json``
(``tkprefix env`` + the two ceilings measured in this run + the sweeps as run and what was trimmed).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import schema
from .cases import Sweep, load_sweeps

DEFAULT_SWEEPS = Path(__file__).resolve().parents[3] / "config" / "sweeps"


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


def _trimmed_rows(sweep: Sweep, case_index: int, reason: str) -> list[dict[str, Any]]:
    case = sweep.cases[case_index]
    out = []
    for name in sweep.impls:
        for g in sweep.graph:
            r = case.base_row()
            r.update(impl=name, graph=int(g), status=schema.unavailable(reason), roofline_us=None)
            out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweeps", default=str(DEFAULT_SWEEPS), help="directory of sweep *.yaml files")
    ap.add_argument("--only", nargs="*", help="configuration names (or prefixes) to run")
    ap.add_argument("--out", default="results/h100", help="output directory")
    ap.add_argument("--impls", nargs="*", help="override every sweep's implementation list")
    ap.add_argument("--reps", type=int, help="override the maximum repetitions per runner")
    ap.add_argument("--every", type=int, default=1, help="run every k-th case of each sweep (debug runs)")
    ap.add_argument("--deadline-s", type=float, default=0.0,
                    help="wall-clock budget for the whole run; cases past it become rows 'unavailable: trimmed ...'")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("tkprefix bench: no CUDA GPU visible; benchmarks need one (replay mode uses data/h100).", file=sys.stderr)
        return 2

    from .. import provenance
    from .runner import run_case
    from .timing import L2Flusher, measure_ceilings

    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sweeps = load_sweeps(args.sweeps, args.only)
    for s in sweeps:
        if args.impls:
            s.impls = list(args.impls)
        if args.reps:
            s.reps = args.reps
        if args.every > 1:
            s.cases = s.cases[:: args.every]
    run_id = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    print("[bench] measuring ceilings (copy bandwidth, bf16 8192^3 GEMM) ...", flush=True)
    ceilings = measure_ceilings()
    print(f"[bench] copy {ceilings['copy_bw_bytes_per_s'] / 1e12:.3f} TB/s, "
          f"GEMM {ceilings['gemm_flops_per_s'] / 1e12:.1f} TFLOP/s", flush=True)
    prov = provenance.collect()
    prov.update(run_id=run_id, ceilings=ceilings, argv=sys.argv, command=["tkprefix", "bench", *(argv or [])],
                sweeps={s.config: {"kind": s.kind, "cases": len(s.cases), "impls": s.impls, "graph": s.graph,
                                   "reps": s.reps, "description": s.description, "trimmed": s.trimmed,
                                   "skip": s.skip}
                        for s in sweeps}, started_utc=run_id)
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    summary: list[str] = []

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # configuration 6 first: its model needs most of the memory, and its rows are the headline of issue 5
    for s in sweeps:
        if s.kind != "e2e":
            continue
        from .e2e import run_e2e

        if args.deadline_s and time.time() - t_start > args.deadline_s:
            log("[bench] e2e skipped: wall-clock budget spent")
            rows = run_e2e(s, ceilings, run_id=run_id, log=log, skip_reason="trimmed: the run's wall-clock budget "
                           f"({args.deadline_s:.0f} s) was spent before configuration 6")
        else:
            rows = run_e2e(s, ceilings, run_id=run_id, log=log)
        schema.write_csv(out / "e2e.csv", rows, schema.E2E_COLUMNS + ("run_id",))
        summary.append(f"{s.config}: {len(rows)} rows, {sum(r['status'] == 'ok' for r in rows)} ok")

    flusher = L2Flusher()
    total = sum(len(s.cases) for s in sweeps if s.kind == "attention")
    bar = _progress(total, "bench")

    for s in sweeps:
        if s.kind == "e2e":
            continue
        rows: list[dict[str, Any]] = []
        for i, case in enumerate(s.cases):
            if args.deadline_s and time.time() - t_start > args.deadline_s:
                rows += _trimmed_rows(s, i, f"trimmed: the run's wall-clock budget ({args.deadline_s:.0f} s) "
                                            "was spent before this case")
                bar.update(1)
                continue
            bar.set_postfix_str(case.label())
            rows += run_case(case, s.impls, s.graph, flusher, ceilings, seed=args.seed + i, reps=s.reps,
                             min_reps=s.min_reps, time_budget_s=s.time_budget_s, log=log, run_id=run_id,
                             skip=s.skip)
            bar.update(1)
            # write after every case: a run cut short still leaves every finished row on disk
            schema.write_csv(out / f"bench_{s.config}.csv", rows, schema.COMMON_COLUMNS + schema.EXTRA_COLUMNS
                             + ("run_id",))
        if not s.cases:
            continue
        schema.write_csv(out / f"bench_{s.config}.csv", rows, schema.COMMON_COLUMNS + schema.EXTRA_COLUMNS
                         + ("run_id",))
        ok = sum(r["status"] == "ok" for r in rows)
        summary.append(f"{s.config}: {len(s.cases)} cases, {len(rows)} rows, {ok} ok")
    bar.close()

    prov["finished_utc"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    prov["wall_s"] = time.time() - t_start
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    print("[bench] done in %.0f s:\n  %s" % (time.time() - t_start, "\n  ".join(summary)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
