"""``tkprefix compare RUN_A RUN_B``: how closely two runs agree, row by row.

A run is a results or data folder (``results/live``, ``data/h100``, ``data/h200/rerun``) holding ``bench_*.csv``
and/or ``e2e.csv`` (docs/design.md), or one such CSV file. Rows are matched by case: configuration, the case
columns (batch, heads, head dim, prefix, suffix, dtype, and levels / chunk size / model size where the CSVs have
them), implementation and timing mode (eager or CUDA graph). For every case that is ``ok`` in both runs the ratio is
B's median time over A's (> 1: B slower). Printed: per implementation the number of cases, geometric mean, min and
max of B/A, and the share of cases within 5 % and 10 % (``|B/A - 1| <= 0.05``); then the same per timing mode and
over all rows. Eager times include the host's launch work: when eager rows moved and graph rows did not, the host
was loaded during one of the runs.

Examples::

    tkprefix compare data/h100 data/h200                     # the same code on two GPUs
    tkprefix compare data/h200 data/h200/rerun --json agreement.json --csv rows.csv
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

__all__ = ["CASE_COLUMNS", "load_run", "gpu_name", "match", "summarize", "compare", "peer_speedups", "main"]

# Columns that identify a case (the ones of these that both runs' CSVs have); with impl and graph, they are the key.
CASE_COLUMNS = ("config", "batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype", "levels",
                "chunk_size", "layers", "hidden", "new_tokens")
TOLERANCES = (0.05, 0.10)
OURS_PREFIX = "tk_"


def _csv_files(run: Path) -> list[Path]:
    if run.is_file():
        return [run]
    if not run.is_dir():
        raise ValueError(f"run: {run} is neither a folder nor a CSV file")
    files = sorted(run.glob("bench_*.csv")) + sorted(run.glob("e2e.csv"))
    if not files:
        raise ValueError(f"run: {run} holds no bench_*.csv or e2e.csv")
    return files


def load_run(run: str | Path) -> pd.DataFrame:
    """Every benchmark row of a run, with ``graph`` as 0/1 and ``median_us`` numeric (NaN where not ok)."""
    run = Path(run)
    frames = []
    for f in _csv_files(run):
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        missing = [c for c in ("config", "impl", "status", "median_us") if c not in df.columns]
        if missing:
            raise ValueError(f"run: {f} lacks the column(s) {missing} (not a tkprefix benchmark CSV)")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True, sort=False).fillna("")
    df["graph"] = df["graph"].str.strip().str.lower().isin(("1", "true", "yes", "graph")).astype(int) \
        if "graph" in df.columns else 0
    df["status"] = df["status"].str.strip()
    df["median_us"] = pd.to_numeric(df["median_us"], errors="coerce")
    return df


def gpu_name(run: str | Path) -> str | None:
    """The GPU named by the run's provenance.json, or None."""
    from .record import gpu_of

    run = Path(run)
    prov = (run if run.is_dir() else run.parent) / "provenance.json"
    return gpu_of(json.loads(prov.read_text())) if prov.is_file() else None


def _key(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    return [c for c in CASE_COLUMNS if c in a.columns and c in b.columns] + ["impl", "graph"]


def match(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Outer join of two runs' rows on the case key; columns key..., status_a, status_b, a_us, b_us, ratio."""
    key = _key(a, b)
    for name, df in (("A", a), ("B", b)):
        dup = df.duplicated(key, keep=False)
        if dup.any():
            first = df.loc[dup, key].iloc[0].to_dict()
            raise ValueError(f"run {name}: {int(dup.sum())} rows share a case key, e.g. {first}")
    m = a[key + ["status", "median_us"]].merge(b[key + ["status", "median_us"]], on=key, how="outer",
                                               suffixes=("_a", "_b"), indicator=True)
    m = m.rename(columns={"median_us_a": "a_us", "median_us_b": "b_us"})
    both_ok = (m["status_a"] == "ok") & (m["status_b"] == "ok") & (m["a_us"] > 0) & (m["b_us"] > 0)
    m["ratio"] = (m["b_us"] / m["a_us"]).where(both_ok)
    return m.sort_values(key).reset_index(drop=True)


def _stats(ratios: pd.Series) -> dict:
    r = ratios.dropna()
    out = {"rows": int(len(r))}
    if len(r):
        out.update(geomean=float(math.exp(r.map(math.log).mean())), min=float(r.min()), max=float(r.max()))
        for tol in TOLERANCES:
            out[f"within_{round(tol * 100)}pct"] = float(((r - 1).abs() <= tol + 1e-12).mean())
    else:
        out.update(geomean=None, min=None, max=None, **{f"within_{round(t * 100)}pct": None for t in TOLERANCES})
    return out


def summarize(m: pd.DataFrame) -> dict:
    """Counts of the join and the ratio statistics per implementation, per configuration and over all rows."""
    both = m["_merge"] == "both"
    out = {
        "rows_a": int((m["_merge"] != "right_only").sum()),
        "rows_b": int((m["_merge"] != "left_only").sum()),
        "matched": int(both.sum()),
        "only_a": int((m["_merge"] == "left_only").sum()),
        "only_b": int((m["_merge"] == "right_only").sum()),
        "ok_both": int(m["ratio"].notna().sum()),
        "ok_in_one_only": int((both & ((m["status_a"] == "ok") != (m["status_b"] == "ok"))).sum()),
        "all": _stats(m["ratio"]),
        "per_impl": {impl: _stats(g["ratio"]) for impl, g in m[both].groupby("impl", sort=True)},
        "per_config": {cfg: _stats(g["ratio"]) for cfg, g in m[both].groupby("config", sort=True)},
        "per_mode": {("graph" if int(mode) else "eager"): _stats(g["ratio"])
                     for mode, g in m[both].groupby("graph", sort=True)},
    }
    return out


def compare(run_a: str | Path, run_b: str | Path) -> tuple[dict, pd.DataFrame]:
    """(summary dict, matched rows) of run B against run A."""
    m = match(load_run(run_a), load_run(run_b))
    summary = {"a": {"path": str(run_a), "gpu": gpu_name(run_a)}, "b": {"path": str(run_b), "gpu": gpu_name(run_b)}}
    summary.update(summarize(m))
    return summary, m


def peer_speedups(df: pd.DataFrame) -> pd.DataFrame:
    """Ours against each peer inside one run: per configuration, (ours, peer) pair and case, the peer's median over
    ours, in CUDA-graph mode where both have an ok row, else eager. Columns: config, ours, peer, cases, geomean,
    min, max (geomean etc. over cases; > 1: ours faster). Our implementations are named tk_* (design.md)."""
    ok = df[(df["status"] == "ok") & (df["median_us"] > 0)]
    key = [c for c in CASE_COLUMNS if c in ok.columns]
    rows = []
    for cfg, g in ok.groupby("config", sort=True):
        t = g.pivot_table(index=key + ["graph"], columns="impl", values="median_us", aggfunc="first")
        impls = list(t.columns)
        for ours in (i for i in impls if i.startswith(OURS_PREFIX)):
            for peer in (i for i in impls if not i.startswith(OURS_PREFIX)):
                pair = t[[ours, peer]].dropna().reset_index()
                if not len(pair):
                    continue
                pair = pair.sort_values("graph", ascending=False).drop_duplicates([k for k in key if k in pair])
                r = pair[peer] / pair[ours]
                rows.append({"config": cfg, "ours": ours, "peer": peer, "cases": len(r),
                             "geomean": float(math.exp(r.map(math.log).mean())), "min": float(r.min()),
                             "max": float(r.max())})
    return pd.DataFrame(rows, columns=["config", "ours", "peer", "cases", "geomean", "min", "max"])


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f} %" if pct else f"{x:.3f}"


def report(s: dict) -> str:
    """The summary as text: one line per implementation, then all rows."""
    a, b = s["a"], s["b"]
    lines = [f"A: {a['path']} ({a['gpu'] or 'GPU not recorded'})", f"B: {b['path']} ({b['gpu'] or 'GPU not recorded'})",
             f"rows matched by case: {s['matched']} (A {s['rows_a']}, B {s['rows_b']}; only in A {s['only_a']}, "
             f"only in B {s['only_b']}); ok in both: {s['ok_both']}; ok in one run only: {s['ok_in_one_only']}",
             "B/A = B's median time over A's (> 1: B slower)", "",
             f"{'implementation':<24} {'rows':>5} {'geomean':>8} {'min':>7} {'max':>7} {'within 5%':>10} {'within 10%':>10}"]
    modes = [(f"(all {mode} rows)", st) for mode, st in s["per_mode"].items()]
    for name, st in list(s["per_impl"].items()) + modes + [("all", s["all"])]:
        lines.append(f"{name:<24} {st['rows']:>5} {_fmt(st['geomean']):>8} {_fmt(st['min']):>7} {_fmt(st['max']):>7} "
                     f"{_fmt(st['within_5pct'], True):>10} {_fmt(st['within_10pct'], True):>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a", help="results or data folder (or one CSV) of run A")
    ap.add_argument("run_b", help="results or data folder (or one CSV) of run B")
    ap.add_argument("--json", help="also write the summary as JSON here")
    ap.add_argument("--csv", help="also write every matched row (key, status and median of each run, ratio) here")
    args = ap.parse_args(argv)
    try:
        summary, rows = compare(args.run_a, args.run_b)
    except ValueError as e:
        print(f"tkprefix compare: {e}", file=sys.stderr)
        return 2
    print(report(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        rows.drop(columns="_merge").assign(matched=rows["_merge"].astype(str)).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
