#!/usr/bin/env python3
"""Ratio tables of a finished run: our implementations against every peer, per configuration, plus the targets.

Usage: python3 scripts/bench/summarize.py data/h200 [> summary.md]

A case is a configuration plus the case columns of ``tkprefix compare`` (batch, heads, head dim, prefix, suffix,
dtype, levels, ...). Every comparison takes, per case, CUDA-graph replay where both sides have an ok row in it, else
eager. Printed (markdown):
- per configuration and (ours, peer) pair: geometric mean, min and max of peer_median / our_median (> 1: ours faster);
- issue 11: the best of ours against the best ok peer per case, the cases where ours is slower, the share of cases
  within 1.15x / 1.5x of the roofline, the headroom per configuration (the best of ours over its floor), and issue
  11's targets with the figures its text cites (before) beside this run's (after);
- issue 12: per peer and configuration, ok or the reason, with the version provenance.json records; the best of ours
  against each peer over every configuration; each implementation's largest error against the float64 reference;
- the README's results table (per configuration and peer, the geometric means of tk_hydragen / tk_chunk_attn /
  tk_tree);
- the e2e table and the targets of issues 3, 4 and 5.
Only the CSVs and provenance.json of the folder are read; nothing measured is written in this file.
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

from tkprefix.bench.compare import CASE_COLUMNS, load_run
from tkprefix.hydragen import plain_decode_by_sdpa

# tk_auto: the public call with backend="auto" (where nothing is shared it may run PyTorch SDPA: docs/design.md)
OURS = ("tk_hydragen", "tk_chunk_attn", "tk_chunk_first", "tk_tree", "tk_auto")
OLD_PEERS = ("sdpa_naive", "sdpa_hydragen", "flashinfer_cascade")  # the peers of main 383d32f (issue 11's "before")
OLD_CONFIGS = ("c1", "c2", "c3", "c4", "c5")  # the configurations of issue 11's "before" (93 cases)
NUMERIC = ("roofline_us", "floor_us", "rel_err", "tflops", "pct_roofline", "tokens_per_s", "median_step_us")

# Where provenance.json records each peer's version (section, key); a peer not listed is "not in provenance".
PEER_VERSION = {
    "sdpa_naive": [("torch", "version")],
    "sdpa_hydragen": [("torch", "version")],
    "cudnn_hydragen": [("torch", "version"), ("torch", "cudnn")],
    "flashinfer_cascade": [("peers", "flashinfer")],
    "flashinfer_decode": [("peers", "flashinfer")],
    "sglang_triton": [("peers", "sglang_decode_attention"), ("peers", "triton")],
    "fasttree": [("peers", "fasttree_artifact"), ("peers", "triton")],
    "deft": [("peers", "fasttree_artifact"), ("peers", "triton")],
    "chunk_attn_upstream": [("peers", "chunk_attn")],
    "hydragen_upstream": [("peers", "hydragen"), ("peers", "flash_attn")],
}

# The README's results table: its peer columns (impl: heading) and our implementations in each cell
README_PEERS = {"sdpa_naive": "sdpa_naive", "sdpa_hydragen": "Hydragen in PyTorch",
                "flashinfer_cascade": "FlashInfer cascade", "flashinfer_decode": "FlashInfer decode",
                "sglang_triton": "SGLang Triton", "fasttree": "FastTree", "deft": "DeFT",
                "chunk_attn_upstream": "upstream ChunkAttention"}
README_OURS = ("tk_hydragen", "tk_chunk_attn", "tk_tree")

# Issue 11's targets, each with the "before" figure its text cites: measured at main 383d32f on the H200 against
# OLD_PEERS over c1-c5 (93 cases). Citations, not results of this run.
ISSUE11_TARGETS = {  # key: (target, before)
    "slower": ("no case where the best of ours is slower than the best peer", "11 of 93 (all in c3)"),
    "geomean": ("geometric-mean speedup over the best peer ≥ 1.8×", "1.39×"),
    "within_1.15": ("≥ 50 % of cases within 1.15× of their roofline", "14 of 93 (15 %)"),
    "within_1.5": ("≥ 90 % of cases within 1.5× of their roofline", "36 of 93 (39 %)"),
    "prefix_tflops": ("prefix kernel ≥ 550 TFLOP/s (c3 B1024 P2K 32/8 S0)", "373 TFLOP/s (92.1 µs)"),
    "gqa_decode": ("GQA suffix decode (c3 8/1, S512) ≤ 1.3× roofline", "3.2–4.0× roofline"),
    "c4_chunk_attn": ("c4: tk_chunk_attn ≥ 1.2× sdpa_hydragen on every case", "0.85× geomean (0.69× worst)"),
    "no_sharing": ("prefix 0 (c1): tk_auto (backend=\"auto\"; else the best of ours) ≥ 1.0× sdpa_naive on every case",
                   "0.88× (c1 B16 P0 S512)"),
}


# ---------------------------------------------------------------------------------------------------------- loading
def load_bench(d: Path) -> pd.DataFrame:
    """Every bench_*.csv row of the folder (tkprefix compare's loader), with the numeric columns as numbers."""
    files = sorted(d.glob("bench_*.csv"))
    if not files:
        raise ValueError(f"run: {d} holds no bench_*.csv")
    df = pd.concat([load_run(f) for f in files], ignore_index=True, sort=False)
    text = [c for c in df.columns if c not in ("graph", "median_us")]  # columns only some files have: ""
    df[text] = df[text].fillna("")
    return numeric(df)


def numeric(df: pd.DataFrame) -> pd.DataFrame:
    for c in NUMERIC:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def case_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in CASE_COLUMNS if c in df.columns]


def case_name(r, config: bool = True) -> str:
    """c3 B1024 H32/8 P2048 S0 (+ fp16, + the tree or forest name where the case has one)."""
    s = f"B{r['batch']} H{r['q_heads']}/{r['kv_heads']} P{r['prefix']} S{r['suffix']}"
    if config:
        s = f"{str(r['config']).split('_')[0]} {s}"
    levels = str(r.get("levels", ""))
    if levels.startswith(("tree:", "forest")):
        s += " " + levels.split("=")[0].removeprefix("tree:")
    if r.get("dtype", "bfloat16") not in ("bfloat16", ""):
        s += " " + {"float16": "fp16"}.get(r["dtype"], r["dtype"])
    return s


def geomean(x: pd.Series) -> float:
    return math.exp(x.map(math.log).mean())


# ------------------------------------------------------------------------------------------------ the one comparison
def best_vs_best(df: pd.DataFrame, ours, peers) -> pd.DataFrame:
    """Per case, the fastest ok implementation of `ours` against the fastest ok one of `peers`, in CUDA-graph mode
    where both sides have an ok row in it, else eager. One row per case: the case columns, graph, ours_impl,
    ours_us, peer_impl, peer_us, roofline_us, floor_us (where recorded) and tflops (of our row), speedup = peer_us /
    ours_us (> 1: ours faster) and case (its name)."""
    key = case_columns(df) + ["graph"]
    ok = df[(df["status"] == "ok") & (df["median_us"] > 0)]

    def fastest(impls, side):
        sub = ok[ok["impl"].isin(list(impls))]
        sub = sub.loc[sub.groupby(key)["median_us"].idxmin()] if len(sub) else sub
        cols = {"impl": f"{side}_impl", "median_us": f"{side}_us"}
        extra = ["roofline_us", "floor_us", "tflops"] if side == "ours" else []
        return sub[key + list(cols) + [c for c in extra if c in sub.columns]].rename(columns=cols)

    m = fastest(ours, "ours").merge(fastest(peers, "peer"), on=key)
    m = m.sort_values("graph", ascending=False).drop_duplicates(case_columns(df)).sort_index()
    m["speedup"] = m["peer_us"] / m["ours_us"]
    m["case"] = [case_name(r) for _, r in m.iterrows()]
    return m.reset_index(drop=True)


def ours_in(df: pd.DataFrame) -> list[str]:
    return [i for i in OURS if i in set(df["impl"])]


def peers_in(df: pd.DataFrame) -> list[str]:
    return [i for i in dict.fromkeys(df["impl"]) if i not in OURS]


def vs_peers(df: pd.DataFrame, peers=None) -> pd.DataFrame:
    """best_vs_best of all our implementations against `peers` (default: every peer of the run)."""
    return best_vs_best(df, ours_in(df), peers_in(df) if peers is None else peers)


def pair_ratios(rows: pd.DataFrame, ours: str, peer: str) -> pd.DataFrame:
    return best_vs_best(rows, [ours], [peer])


# ----------------------------------------------------------------------------------------------------- issue 11
def issue11_stats(df: pd.DataFrame, peers=None) -> dict:
    """The numbers of issue 11's first target lines for the best of ours against the best of `peers`."""
    m = vs_peers(df, peers)
    out = {"cases": len(m), "per_config": m.groupby("config").size().to_dict(), "table": m}
    if not len(m):
        return out
    slower = m[m["speedup"] < 1].sort_values("speedup")
    roof = m["ours_us"] / m["roofline_us"]
    at_roof = (m["peer_us"] / m["roofline_us"]).dropna()  # the speedup of a kernel at its roofline on every case
    out.update(slower=slower, geomean=geomean(m["speedup"]), min=m.loc[m["speedup"].idxmin()],
               ceiling=geomean(at_roof) if len(at_roof) else float("nan"),
               max=m.loc[m["speedup"].idxmax()], roofline_cases=int(roof.notna().sum()),
               within_115=int((roof <= 1.15).sum()), within_15=int((roof <= 1.5).sum()),
               under_10us=int((m["roofline_us"] < 10).sum()),
               under_10us_within_115=int(((m["roofline_us"] < 10) & (roof <= 1.15)).sum()))
    floor = m["floor_us"].dropna() if "floor_us" in m.columns else pd.Series(dtype=float)
    if len(floor):  # the floor under the method (stats.floor_us): only in runs that measured it
        fm = m.loc[floor.index]
        out.update(floor_cases=len(fm), floor_over_115=int((fm["floor_us"] > 1.15 * fm["roofline_us"]).sum()),
                   floor_over_15=int((fm["floor_us"] > 1.5 * fm["roofline_us"]).sum()),
                   within_115_floor=int((fm["ours_us"] <= 1.15 * fm["floor_us"]).sum()),
                   within_15_floor=int((fm["ours_us"] <= 1.5 * fm["floor_us"]).sum()),
                   floor_ceiling=geomean(fm["peer_us"] / fm["floor_us"]))
    return out


def _count(n: int, of: int) -> str:
    return f"{n} of {of} ({100 * n / of:.0f} %)" if of else "–"


def issue11_section(df: pd.DataFrame) -> list[str]:
    s = issue11_stats(df)
    ran = set(df.loc[df["status"] == "ok", "impl"])
    out = ["## Issue 11: best of ours against the best peer, per case\n",
           f"Ours: {', '.join(ours_in(df))}. Peers: every other implementation, on its ok rows (rows "
           f"wrong/oom/unavailable take no part): {', '.join(p for p in peers_in(df) if p in ran)}; never ok: "
           f"{', '.join(p for p in peers_in(df) if p not in ran) or 'none'}. Speedup = best peer median / best "
           "ours median, CUDA-graph replay where both sides have an ok row in it, else eager. tk_chunk_first (c4) "
           "and prior_tk_chunk_first time the chunk-first phase alone.\n"]
    if not s["cases"]:
        return out + ["No case has an ok row of ours and of a peer.\n"]
    per = ", ".join(f"{k.split('_')[0]} {v}" for k, v in s["per_config"].items())
    lo, hi = s["min"], s["max"]
    n = s["cases"]
    who = ", ".join(f"{k} {v}" for k, v in s["table"]["ours_impl"].value_counts().items())
    out += [f"- cases: {n} ({per}); the best of ours is {who}",
            f"- geometric-mean speedup: {s['geomean']:.2f}×; min {lo['speedup']:.2f}× ({lo['case']}: "
            f"{lo['ours_impl']} {lo['ours_us']:.1f} µs vs {lo['peer_impl']} {lo['peer_us']:.1f} µs); max "
            f"{hi['speedup']:.2f}× ({hi['case']})",
            f"- ceiling: a kernel at its roofline on every case would be {s['ceiling']:.2f}× the best peer in "
            "geometric mean (best peer median / roofline_us)",
            f"- ours slower than the best peer: {len(s['slower'])} of {n}"
            + (f", worst {lo['case']} ({lo['speedup']:.2f}× against {lo['peer_impl']})" if len(s["slower"]) else ""),
            f"- best-ours time within 1.15× of the row's roofline_us: {_count(s['within_115'], s['roofline_cases'])};"
            f" within 1.5×: {_count(s['within_15'], s['roofline_cases'])}",
            f"- cases with a roofline under 10 µs (launch latency dominates): {s['under_10us']} "
            f"({s['under_10us_within_115']} of them within 1.15×)"]
    if "floor_cases" in s:
        fc = s["floor_cases"]
        out += [f"- the floor under the method (floor_us: a graph launch timed after the L2 flush, then the roofline "
                "plus the write-back of the dirty lines the flush leaves in L2; docs/design.md): above 1.15× the "
                f"roofline in {_count(s['floor_over_115'], fc)} (1.15× of the roofline cannot be reached there "
                f"under this method), above 1.5× in {s['floor_over_15']}; best-ours time within 1.15× of its floor: "
                f"{_count(s['within_115_floor'], fc)}, within 1.5×: {_count(s['within_15_floor'], fc)}; a kernel at "
                f"its floor on every case would be {s['floor_ceiling']:.2f}× the best peer in geometric mean"]
    else:
        out += ["- the floor under the method (floor_us): not measured in this run"]
    out.append("")
    out += headroom_section(s["table"])
    if len(s["slower"]):
        out += ["Cases where ours is slower (worst first):\n",
                "| case | graph | best ours | µs | best peer | µs | speedup |", "|---|---|---|---|---|---|---|"]
        out += [f"| {r['case']} | {r['graph']} | {r['ours_impl']} | {r['ours_us']:.1f} | {r['peer_impl']} | "
                f"{r['peer_us']:.1f} | {r['speedup']:.2f}× |" for _, r in s["slower"].iterrows()]
        out.append("")
    return out


def _select(m: pd.DataFrame, **kw) -> pd.DataFrame:
    sel = pd.Series(True, index=m.index)
    for k, v in kw.items():
        sel &= m[k].astype(str) == str(v)
    return m[sel]


def headroom(m: pd.DataFrame) -> pd.DataFrame:
    """Per configuration of `m` (best_vs_best's table): where the best of ours sits above its floor. `share` is the
    configuration's part of sum(log(ours / floor)) over all cases (clipped at 0: a case at or under its floor has
    none), i.e. of the geometric-mean speedup that kernels at the floor everywhere would add."""
    fm = m.dropna(subset=["floor_us"]).assign(over=lambda x: x["ours_us"] / x["floor_us"])
    gap = fm["over"].map(math.log).clip(lower=0)
    total = gap.sum()
    rows = []
    for cfg, g in fm.groupby("config", sort=True):
        far = g.loc[g["over"].idxmax()]
        rows.append({"config": str(cfg).split("_")[0], "cases": len(g), "speedup": geomean(g["speedup"]),
                     "over_floor": geomean(g["over"]), "share": gap[g.index].sum() / total if total else 0.0,
                     "furthest": f"{far['case'].split(' ', 1)[1]} ({far['ours_impl']}, {far['over']:.2f}×)"})
    return pd.DataFrame(rows)


def headroom_section(m: pd.DataFrame) -> list[str]:
    h = headroom(m)
    if not len(h):
        return []
    return (["Headroom by configuration: the best of ours over its floor (geometric mean), each configuration's share "
             "of the total log gap to the floor (where a faster kernel would move the geometric-mean speedup most), "
             "and the case furthest above its floor:\n",
             "| config | cases | speedup | ours / floor | share of the gap | furthest above its floor |",
             "|---|---|---|---|---|---|"]
            + [f"| {r.config} | {r.cases} | {r.speedup:.2f}× | {r.over_floor:.2f}× | {100 * r.share:.0f} % | "
               f"{r.furthest} |" for r in h.itertuples()] + [""])


def issue11_targets(df: pd.DataFrame) -> list[str]:
    """Issue 11's targets: before (its text, main 383d32f) and after (this run)."""
    rows = []

    def row(key, after=None, met=None):
        target, before = ISSUE11_TARGETS[key]
        verdict = "–" if after is None else ("yes" if met else "no")
        rows.append(f"| {target} | {before} | {after or 'not measured'} | {verdict} |")

    old_peers = [p for p in OLD_PEERS if p in set(df["impl"])]
    s, old = issue11_stats(df), issue11_stats(df, old_peers)
    old15 = issue11_stats(df[df["config"].str.split("_").str[0].isin(OLD_CONFIGS)], old_peers)
    if s["cases"]:
        n, no, no15, rc = s["cases"], old["cases"], old15["cases"], s["roofline_cases"]
        old_slower = (f"; old peer set: {len(old['slower'])} of {no}, on c1–c5 {len(old15['slower'])} of {no15}"
                      if no15 else "")
        old_g = (f"; old peer set: {old['geomean']:.2f}× over {no} cases, on c1–c5 {old15['geomean']:.2f}× over "
                 f"{no15}" if no15 else "; old peer set: no case in c1–c5")
        row("slower", f"{len(s['slower'])} of {n}{old_slower}", len(s["slower"]) == 0)
        at_floor = f"; at the floor under the method: {s['floor_ceiling']:.2f}×" if "floor_cases" in s else ""
        row("geomean", f"{s['geomean']:.2f}× over {n} cases{old_g}; at the roofline on every case: "
            f"{s['ceiling']:.2f}×{at_floor}", s["geomean"] >= 1.8)
        floor = (f"; the floor under the method is above 1.15× the roofline in {s['floor_over_115']} cases"
                 if "floor_cases" in s else "")
        row("within_1.15", f"{_count(s['within_115'], rc)}; {s['under_10us']} cases have a roofline < 10 µs{floor}",
            rc > 0 and s["within_115"] >= 0.5 * rc)
        row("within_1.5", _count(s["within_15"], rc), rc > 0 and s["within_15"] >= 0.9 * rc)
    else:
        for key in ("slower", "geomean", "within_1.15", "within_1.5"):
            row(key)

    ours = ours_in(df)
    ok_ours = df[df["impl"].isin(ours) & (df["status"] == "ok") & (df["median_us"] > 0)]
    best = ok_ours.sort_values(["graph", "median_us"], ascending=[False, True]).drop_duplicates(case_columns(df))
    c3 = _select(best, config="c3_gqa_large_batch", batch=1024, prefix=2048, q_heads=32, kv_heads=8, suffix=0)
    if len(c3):
        r = c3.iloc[0]
        row("prefix_tflops", f"{r['tflops']:.0f} TFLOP/s ({r['median_us']:.1f} µs, {r['impl']}, graph={r['graph']})",
            r["tflops"] >= 550)
    else:
        row("prefix_tflops")

    gqa = _select(best, config="c3_gqa_large_batch", q_heads=8, kv_heads=1, suffix=512)
    if len(gqa):
        x = gqa["median_us"] / gqa["roofline_us"]
        fl = (gqa["floor_us"] / gqa["roofline_us"]).dropna() if "floor_us" in gqa.columns else []
        floor = f"; their floors {fl.min():.2f}–{fl.max():.2f}× roofline" if len(fl) else ""
        row("gqa_decode", f"{x.min():.2f}–{x.max():.2f}× roofline over {len(x)} cases (worst "
            f"{case_name(gqa.loc[x.idxmax()])}){floor}", x.max() <= 1.3)
    else:
        row("gqa_decode")

    c4 = pair_ratios(df[df["config"] == "c4_chunk_first"], "tk_chunk_attn", "sdpa_hydragen")
    if len(c4):
        w = c4.loc[c4["speedup"].idxmin()]
        below = ""
        if "floor_us" in c4.columns and c4["floor_us"].notna().any():
            n_below = int((c4["peer_us"] / 1.2 < c4["floor_us"]).sum())
            below = f"; in {n_below} of them sdpa_hydragen's time / 1.2 is below the floor under the method"
        row("c4_chunk_attn", f"{geomean(c4['speedup']):.2f}× geomean ({w['speedup']:.2f}× worst, {w['case']}; "
            f"{len(c4)} cases{below})", w["speedup"] >= 1.2)
    else:
        row("c4_chunk_attn")

    no_share = _select(df, config="c1_system_prompt", prefix=0)
    mine = ["tk_auto"] if "tk_auto" in set(no_share["impl"]) else ours
    p0 = best_vs_best(no_share, mine, ["sdpa_naive"])
    if len(p0):
        w = p0.loc[p0["speedup"].idxmin()]
        who = "tk_auto" if mine == ["tk_auto"] else "best of ours, no tk_auto rows recorded"
        same = ""
        if mine == ["tk_auto"]:   # where auto's rule runs the plain SDPA decode, the two rows time one call
            sdpa = p0[[plain_decode_by_sdpa(1, int(r.q_heads), int(r.kv_heads), int(r.suffix), 0, False,
                                            int(r.batch)) for r in p0.itertuples()]]
            if len(sdpa):
                same = (f"; in {len(sdpa)} of them auto runs the plain SDPA decode, sdpa_naive's own call "
                        f"({sdpa['speedup'].min():.3f}–{sdpa['speedup'].max():.3f}×)")
        row("no_sharing", f"{who}: {w['speedup']:.2f}× worst ({w['case']}, {w['ours_impl']}); "
            f"{geomean(p0['speedup']):.2f}× geomean over {len(p0)} cases{same}", w["speedup"] >= 1.0)
    else:
        row("no_sharing")

    caption = ("Before: issue 11's text, measured at main 383d32f on the H200 against the peers of that time "
               f"({', '.join(OLD_PEERS)}) over c1–c5 (93 cases); cited, not computed here. After: this run, against "
               "every peer in it. The peer set grew since 383d32f (FastTree, DeFT, SGLang Triton, FlashInfer "
               "decode, cuDNN Hydragen, upstream ChunkAttention), and configurations and fp16 cases were added, so "
               "the first two rows also give the figures over the old peer set, on every configuration and on c1–c5 "
               "alone (like with like; c4 and c5 now also hold fp16 cases).\n")
    return ["## Issue 11 targets: before / after\n", caption, "| target | before | after | met |", "|---|---|---|---|",
            *rows, ""]


# ----------------------------------------------------------------------------------------------------- issue 12
def _short_status(status: str, width: int = 48) -> str:
    """`kind: reason` with the reason cut to `width` characters (and no `|`, which would split a table cell)."""
    if status in ("ok", "oom"):
        return status
    kind, _, why = status.partition(":")
    why = why.strip().replace("|", "/")
    return f"{kind}: {why[:width]}{'…' if len(why) > width else ''}" if why else kind


def peer_status(df: pd.DataFrame) -> pd.DataFrame:
    """Per (peer, configuration): the cases ok, and each other status (short) with its count, as one cell of text.
    A case counts as ok when either timing mode is ok."""
    key = case_columns(df)
    per_case = (df.assign(_ok=df["status"] == "ok").sort_values("_ok", ascending=False)
                .drop_duplicates(key + ["impl"]))
    per_case = per_case[~per_case["impl"].isin(OURS)]
    cells = {}
    for (impl, cfg), g in per_case.groupby(["impl", "config"], sort=False):
        counts = g["status"].map(_short_status).value_counts()
        counts = counts.reindex(sorted(counts.index, key=lambda s: s != "ok"))  # ok first
        cells[(impl, cfg)] = "; ".join(f"ok {n}" if s == "ok" else f"{s} ×{n}" for s, n in counts.items())
    t = pd.Series(cells).unstack()
    return t.reindex(index=peers_in(df), columns=sorted(set(df["config"]))).fillna("–")


def peer_versions(prov: dict, impl: str) -> str:
    found = [f"{sec}.{k} {prov[sec][k]}" for sec, k in PEER_VERSION.get(impl, [])
             if isinstance(prov.get(sec), dict) and prov[sec].get(k) is not None]
    return "; ".join(found) if found else "not in provenance"


def note_commits(df: pd.DataFrame, impl: str) -> str:
    """Commits the rows' notes name (`@ <hex>`), e.g. the upstream checkout an adapter ran."""
    notes = " ".join(df.loc[df["impl"] == impl, "note"].astype(str)) if "note" in df.columns else ""
    return ", ".join(dict.fromkeys(re.findall(r"@ ?(?:[\w.-]+ )?([0-9a-f]{7,40})\b", notes))) or "–"


def issue12_section(df: pd.DataFrame, prov: dict) -> list[str]:
    peers = peers_in(df)
    if not peers:
        return ["## Issue 12: peers\n", "No peer rows in this run.\n"]
    status = peer_status(df)
    cfgs = [c.split("_")[0] for c in status.columns]
    out = ["## Issue 12: every peer in this run\n",
           "Status per peer and configuration: ok cases (either timing mode) or the reason. Version: what "
           "provenance.json records for it (section.key value), or \"not in provenance\"; commit in notes: the "
           "commit the rows' notes name. –: not in that configuration's sweep.\n",
           "| peer | version (provenance.json) | commit in notes | dtypes ok | " + " | ".join(cfgs) + " |",
           "|---|---|---|---|" + "---|" * len(cfgs)]
    for p in peers:
        dts = ", ".join(sorted(set(df.loc[(df["impl"] == p) & (df["status"] == "ok"), "dtype"]))) or "–"
        out.append(f"| {p} | {peer_versions(prov, p)} | {note_commits(df, p)} | {dts} | "
                   + " | ".join(status.loc[p]) + " |")
    out += ["", "Best of ours against each peer, over every configuration of this run (peer median / best-ours "
            "median; > 1: ours faster):\n",
            "| peer | cases | slower | geomean | min (case) | max (case) |", "|---|---|---|---|---|---|"]
    for p in peers:
        m = vs_peers(df, [p])
        if not len(m):
            out.append(f"| {p} | 0 | – | – | – | – |")
            continue
        lo, hi = m.loc[m["speedup"].idxmin()], m.loc[m["speedup"].idxmax()]
        out.append(f"| {p} | {len(m)} | {int((m['speedup'] < 1).sum())} | {geomean(m['speedup']):.2f}× | "
                   f"{lo['speedup']:.2f}× ({lo['case']}) | {hi['speedup']:.2f}× ({hi['case']}) |")
    out += ["", "Correctness against the float64 reference (rel_err of the ok rows, both timing modes):\n",
            "| implementation | ok rows | max rel_err | case |", "|---|---|---|---|"]
    ok = df[(df["status"] == "ok") & df["rel_err"].notna()] if "rel_err" in df.columns else df.iloc[:0]
    for impl in peers + ours_in(df):
        g = ok[ok["impl"] == impl]
        who = f"{impl} (ours)" if impl in OURS else impl
        if not len(g):
            out.append(f"| {who} | 0 | – | – |")
            continue
        w = g.loc[g["rel_err"].idxmax()]
        out.append(f"| {who} | {len(g)} | {w['rel_err']:.2e} | {case_name(w)} |")
    return out + [""]


# ------------------------------------------------------------------------------------- per configuration, e2e, 3-5
def status_summary(rows: pd.DataFrame, impl: str) -> str:
    st = rows.loc[rows["impl"] == impl, "status"].map(lambda s: _short_status(s, 70)).value_counts(sort=False)
    return "; ".join(f"{k} ×{v}" for k, v in st.items())


def ratio_section(rows: pd.DataFrame) -> list[str]:
    """One configuration: each of ours against each peer (and tk_chunk_attn against tk_hydragen)."""
    impls = list(dict.fromkeys(rows["impl"]))
    out = [f"## {rows['config'].iloc[0]}\n", "| ours | peer | cases | geomean | min (case) | max (case) |",
           "|---|---|---|---|---|---|"]
    for ours in (i for i in OURS if i in impls):
        for peer in impls:
            if peer == ours or peer in OURS and not (ours == "tk_chunk_attn" and peer == "tk_hydragen"):
                continue
            m = pair_ratios(rows, ours, peer)
            if not len(m):
                out.append(f"| {ours} | {peer} | 0 | – | {status_summary(rows, ours)[:60]} / "
                           f"{status_summary(rows, peer)[:90]} | |")
                continue
            lo, hi = m.loc[m["speedup"].idxmin()], m.loc[m["speedup"].idxmax()]
            out.append(f"| {ours} | {peer} | {len(m)} | {geomean(m['speedup']):.2f}× | {lo['speedup']:.2f}× "
                       f"({case_name(lo, False)}) | {hi['speedup']:.2f}× ({case_name(hi, False)}) |")
    out += ["", "status per implementation: " + " | ".join(f"**{i}**: {status_summary(rows, i)}" for i in impls), ""]
    return out


def _times(x: float) -> str:
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def readme_table(df: pd.DataFrame) -> list[str]:
    """The README's results table: per configuration (but c6, end to end) and peer, the geometric mean of peer / ours
    for each of README_OURS that ran there (tk_tree in c8 only), "–" where the pair has no case in common."""
    out = ["## README table\n", "| config | " + " | ".join(README_PEERS.values()) + " |",
           "|---" * (len(README_PEERS) + 1) + "|"]
    for cfg, rows in df.groupby("config", sort=True):
        ours = [o for o in README_OURS if ((rows["impl"] == o) & (rows["status"] == "ok")).any()]
        if not ours or cfg.startswith("c6"):
            continue
        cells = []
        for peer in README_PEERS:
            g = [_times(geomean(m["speedup"])) if len(m := pair_ratios(rows, o, peer)) else "–" for o in ours]
            cells.append("–" if set(g) == {"–"} else " / ".join(g))
        out.append(f"| {cfg} | " + " | ".join(cells) + " |")
    return out + [""]


def e2e_section(d: Path) -> list[str]:
    if not (d / "e2e.csv").exists():
        return []
    rows = numeric(load_run(d / "e2e.csv"))
    out = ["## c6_e2e (tokens/s)\n", "| batch | impl | graph | status | tokens/s | median step µs | rel_err | "
           "vs sdpa_naive | tk_hydragen / this |", "|---|---|---|---|---|---|---|---|---|"]
    for (_, G), rb in sorted(rows.groupby(["batch", "graph"]), key=lambda x: (int(x[0][0]), x[0][1])):
        tps = rb[rb["status"] == "ok"].set_index("impl")["tokens_per_s"]
        for _, r in rb.iterrows():
            t = tps.get(r["impl"])
            vs = f"{t / tps['sdpa_naive']:.2f}×" if t and "sdpa_naive" in tps else ""
            us = f"{tps['tk_hydragen'] / t:.2f}×" if t and "tk_hydragen" in tps else ""
            step = f"{r['median_step_us']:.0f}" if pd.notna(r["median_step_us"]) else ""
            rel = f"{r['rel_err']:.3g}" if pd.notna(r["rel_err"]) else ""
            out.append(f"| {r['batch']} | {r['impl']} | {G} | {r['status'][:80]} | {f'{t:,.0f}' if t else ''} | "
                       f"{step} | {rel} | {vs} | {us} |")
    return out + [""]


def _find(df: pd.DataFrame, impl: str, **kw):
    """The ok row of impl matching kw, graph replay preferred; else its first row (for its status); else None."""
    cand = _select(df[df["impl"] == impl], **kw)
    ok = cand[cand["status"] == "ok"].sort_values("graph", ascending=False)
    return ok.iloc[0] if len(ok) else (cand.iloc[0] if len(cand) else None)


def targets(df: pd.DataFrame, d: Path) -> list[str]:
    out = ["## Targets of the kernel issues and issue 5\n", "| target | measured | met |", "|---|---|---|"]

    def line(name, measured, met):
        out.append(f"| {name} | {measured} | {'yes' if met else ('no' if met is not None else 'not measured')} |")

    def ok(r):
        return r is not None and r["status"] == "ok"

    c3 = df[df["config"] == "c3_gqa_large_batch"]
    r = _find(c3, "tk_hydragen", batch=1024, prefix=2048, q_heads=32, kv_heads=8, suffix=0)
    if ok(r):
        line("#3 prefix kernel >= 550 TFLOP/s (B1024, P2K, 32/8, suffix 0: whole tk_hydragen call)",
             f"{r['tflops']:.0f} TFLOP/s ({r['median_us']:.1f} us, graph={r['graph']})", r["tflops"] >= 550)
    else:
        line("#3 prefix kernel >= 550 TFLOP/s", r["status"] if r is not None else "no row", None)
    c1 = df[df["config"] == "c1_system_prompt"]
    case = dict(batch=32, prefix=4096, suffix=512)
    naive = _find(c1, "sdpa_naive", **case)
    naive = naive["median_us"] if ok(naive) else None
    for ours, k_naive, issue in (("tk_hydragen", 4, "#3"), ("tk_chunk_attn", 5, "#4")):
        r = _find(c1, ours, **case)
        if ok(r):
            t, roof = r["median_us"], r["roofline_us"]
            line(f"{issue} {ours} B32 P4096 S512 within 1.25x of the unique-bytes roofline",
                 f"{t:.1f} us vs roofline {roof:.1f} us = {t / roof:.2f}x", t / roof <= 1.25)
            line(f"{issue} {ours} B32 P4096 S512 >= {k_naive}x faster than sdpa_naive",
                 f"{naive / t:.2f}x" if naive else "sdpa_naive not ok", naive / t >= k_naive if naive else None)
        else:
            line(f"{issue} {ours} B32 P4096 S512", r["status"] if r is not None else "no row", None)
    r, up = _find(c1, "tk_chunk_attn", **case), _find(c1, "chunk_attn_upstream", **case)
    if ok(r) and ok(up):
        line("#4 tk_chunk_attn ~1.5x faster than upstream ChunkAttention (B32 P4096 S512)",
             f"{up['median_us'] / r['median_us']:.2f}x", up["median_us"] / r["median_us"] >= 1.5)
    else:
        line("#4 tk_chunk_attn ~1.5x faster than upstream ChunkAttention",
             up["status"] if up is not None else "no row", None)
    c4 = df[(df["config"] == "c4_chunk_first") & df["impl"].isin(["tk_chunk_first", "tk_chunk_attn"])
            & (df["status"] == "ok") & (df["graph"] == 1)]
    for _, r in c4.iterrows():
        out.append(f"| #4 {r['impl']} TFLOP/s (report) B{r['batch']} H{r['q_heads']} {r['dtype']} | "
                   f"{r['tflops']:.0f} TFLOP/s, {r['pct_roofline']:.0f}% of roofline | – |")
    e2e = numeric(load_run(d / "e2e.csv")) if (d / "e2e.csv").exists() else None
    for G, label in ((1, "CUDA-graph decode"), (0, "eager decode")):
        tps = ({} if e2e is None else
               e2e[(e2e["batch"] == "128") & (e2e["status"] == "ok") & (e2e["graph"] == G)]
               .set_index("impl")["tokens_per_s"].to_dict())
        ours = tps.get("tk_hydragen")
        for peer, k in (("sdpa_naive", 3.0), ("flashinfer_cascade", 1.2)):
            if ours and peer in tps:
                line(f"#5 e2e batch 128, 4K prompt, {label}: tk_hydragen >= {k}x tokens/s of {peer}",
                     f"{ours:,.0f} vs {tps[peer]:,.0f} tok/s = {ours / tps[peer]:.2f}x", ours / tps[peer] >= k)
            else:
                line(f"#5 e2e batch 128, {label}: tk_hydragen vs {peer}", "one of them not ok", None)
    return out


def main(argv: list[str]) -> int:
    d = Path(argv[1] if len(argv) > 1 else "data/h100")
    try:
        df = load_bench(d)
    except ValueError as e:
        print(f"summarize.py: {e}", file=sys.stderr)
        return 2
    prov = json.loads((d / "provenance.json").read_text()) if (d / "provenance.json").exists() else {}
    out = [f"# Ratios of the run in {d}\n",
           "peer median / our median over the cases where both are ok (graph replay where both have it, else "
           "eager); > 1 means ours is faster.\n"]
    for cfg, rows in df.groupby("config", sort=True):
        out += ratio_section(rows)
    out += readme_table(df) + e2e_section(d) + issue11_section(df) + issue11_targets(df)
    out += issue12_section(df, prov) + targets(df, d)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
