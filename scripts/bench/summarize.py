#!/usr/bin/env python3
"""Ratio tables of a finished run: our implementations against every peer, per configuration, plus the targets.

Usage: python3 scripts/bench/summarize.py data/h100 [> summary.md]

For each configuration and each (ours, peer) pair: over the cases where both rows are ok in the same timing mode
(CUDA-graph replay where both have it, else eager), the geometric mean, min and max of peer_median / our_median
(> 1: ours faster), and how many cases were compared. Peers that never ran are listed with their status.
"""
from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

OURS = ("tk_hydragen", "tk_chunk_attn", "tk_chunk_first")
KEY = ("batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "levels", "dtype")  # one case per key


def load(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def pick(rows_by_mode: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return rows_by_mode


def ratios(rows: list[dict[str, str]]):
    by_case: dict[tuple, dict[str, dict[str, dict[str, str]]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        by_case[tuple(r.get(k, "") for k in KEY)][r["impl"]][r["graph"]] = r
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    out = {}
    for ours in OURS:
        if ours not in impls:
            continue
        for peer in impls:
            if peer == ours or peer in OURS and not (ours == "tk_chunk_attn" and peer == "tk_hydragen"):
                continue
            xs = []
            for case, d in by_case.items():
                for mode in ("1", "0"):
                    a, b = d.get(ours, {}).get(mode), d.get(peer, {}).get(mode)
                    if a and b and a["status"] == "ok" and b["status"] == "ok":
                        xs.append((float(b["median_us"]) / float(a["median_us"]), mode, case))
                        break
            out[(ours, peer)] = xs
    return out, impls


def status_summary(rows: list[dict[str, str]], impl: str) -> str:
    st = defaultdict(int)
    for r in rows:
        if r["impl"] == impl:
            st[r["status"] if r["status"] in ("ok", "oom") else r["status"].split(":")[0] + ": " +
               r["status"].split(":", 1)[1].strip()[:70]] += 1
    return "; ".join(f"{k} ×{v}" for k, v in st.items())


def fmt_case(case: tuple) -> str:
    c = dict(zip(KEY, case))
    tree = c["levels"].split("=")[0] if c["levels"].startswith("tree:") else ""
    return (f"B{c['batch']} H{c['q_heads']}/{c['kv_heads']} " + (tree if tree else f"P{c['prefix']} S{c['suffix']}")
            + ("" if c["dtype"] in ("bfloat16", "") else f" {c['dtype']}"))


def _find(rows, impl, **kw):
    """The ok row of impl matching kw, graph replay preferred; else the first row (for its status)."""
    cand = [r for r in rows if r["impl"] == impl and all(str(r.get(k)) == str(v) for k, v in kw.items())]
    ok = sorted((r for r in cand if r["status"] == "ok"), key=lambda r: r["graph"], reverse=True)
    return ok[0] if ok else (cand[0] if cand else None)


def _t(r):
    return float(r["median_us"]) if r and r["status"] == "ok" else None


def targets(d: Path) -> list[str]:
    out = ["## Targets of the kernel issues and issue 5\n", "| target | measured | met |", "|---|---|---|"]

    def line(name, measured, met):
        out.append(f"| {name} | {measured} | {'yes' if met else ('no' if met is not None else 'not measured')} |")

    c3 = load(d / "bench_c3_gqa_large_batch.csv") if (d / "bench_c3_gqa_large_batch.csv").exists() else []
    r = _find(c3, "tk_hydragen", batch=1024, prefix=2048, q_heads=32, kv_heads=8, suffix=0)
    if r and r["status"] == "ok":
        line("#3 prefix kernel >= 550 TFLOP/s (B1024, P2K, 32/8, suffix 0: whole tk_hydragen call)",
             f"{float(r['tflops']):.0f} TFLOP/s ({float(r['median_us']):.1f} us, graph={r['graph']})",
             float(r["tflops"]) >= 550)
    else:
        line("#3 prefix kernel >= 550 TFLOP/s", r["status"] if r else "no row", None)
    c1 = load(d / "bench_c1_system_prompt.csv") if (d / "bench_c1_system_prompt.csv").exists() else []
    case = dict(batch=32, prefix=4096, suffix=512)
    naive = _t(_find(c1, "sdpa_naive", **case))
    for ours, k_naive, issue in (("tk_hydragen", 4, "#3"), ("tk_chunk_attn", 5, "#4")):
        r = _find(c1, ours, **case)
        if r and r["status"] == "ok":
            t, roof = float(r["median_us"]), float(r["roofline_us"])
            line(f"{issue} {ours} B32 P4096 S512 within 1.25x of the unique-bytes roofline",
                 f"{t:.1f} us vs roofline {roof:.1f} us = {t / roof:.2f}x", t / roof <= 1.25)
            line(f"{issue} {ours} B32 P4096 S512 >= {k_naive}x faster than sdpa_naive",
                 f"{naive / t:.2f}x" if naive else "sdpa_naive not ok", naive / t >= k_naive if naive else None)
        else:
            line(f"{issue} {ours} B32 P4096 S512", r["status"] if r else "no row", None)
    r = _find(c1, "tk_chunk_attn", **case)
    up = _find(c1, "chunk_attn_upstream", **case)
    if r and up and r["status"] == "ok" and up["status"] == "ok":
        line("#4 tk_chunk_attn ~1.5x faster than upstream ChunkAttention (B32 P4096 S512)",
             f"{float(up['median_us']) / float(r['median_us']):.2f}x", float(up["median_us"]) / float(r["median_us"]) >= 1.5)
    else:
        line("#4 tk_chunk_attn ~1.5x faster than upstream ChunkAttention", (up or {}).get("status", "no row"), None)
    c4 = load(d / "bench_c4_chunk_first.csv") if (d / "bench_c4_chunk_first.csv").exists() else []
    for r in c4:
        if r["impl"] in ("tk_chunk_first", "tk_chunk_attn") and r["status"] == "ok" and r["graph"] == "1":
            out.append(f"| #4 {r['impl']} TFLOP/s (report) B{r['batch']} H{r['q_heads']} | "
                       f"{float(r['tflops']):.0f} TFLOP/s, {float(r['pct_roofline']):.0f}% of roofline | – |")
    e2e = load(d / "e2e.csv") if (d / "e2e.csv").exists() else []
    for G, label in (("1", "CUDA-graph decode"), ("0", "eager decode")):
        tps = {r["impl"]: float(r["tokens_per_s"]) for r in e2e
               if r["batch"] == "128" and r["status"] == "ok" and r.get("graph", "0") == G}
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
    print(f"# Ratios of the run in {d}\n")
    print("peer median / our median over the cases where both are ok (graph replay where both have it, else "
          "eager); > 1 means ours is faster.\n")
    for path in sorted(d.glob("bench_*.csv")):
        rows = load(path)
        if not rows:
            continue
        rs, impls = ratios(rows)
        print(f"## {path.stem[6:]}\n")
        print("| ours | peer | cases | geomean | min (case) | max (case) |")
        print("|---|---|---|---|---|---|")
        for (ours, peer), xs in rs.items():
            if not xs:
                print(f"| {ours} | {peer} | 0 | – | {status_summary(rows, ours)[:60]} / {status_summary(rows, peer)[:90]} | |")
                continue
            g = math.exp(sum(math.log(x) for x, _, _ in xs) / len(xs))
            lo = min(xs)
            hi = max(xs)
            print(f"| {ours} | {peer} | {len(xs)} | {g:.2f}× | {lo[0]:.2f}× ({fmt_case(lo[2])}) | "
                  f"{hi[0]:.2f}× ({fmt_case(hi[2])}) |")
        print()
        print("status per implementation: " + " | ".join(f"**{i}**: {status_summary(rows, i)}" for i in impls))
        print()
    e2e = d / "e2e.csv"
    if e2e.exists():
        rows = load(e2e)
        print("## c6_e2e (tokens/s)\n")
        print("| batch | impl | graph | status | tokens/s | median step µs | rel_err | vs sdpa_naive | tk_hydragen / this |")
        print("|---|---|---|---|---|---|---|---|---|")
        for B, G in sorted({(r["batch"], r.get("graph", "0")) for r in rows}, key=lambda x: (int(x[0]), x[1])):
            rb = [r for r in rows if r["batch"] == B and r.get("graph", "0") == G]
            tps = {r["impl"]: float(r["tokens_per_s"]) for r in rb if r["status"] == "ok"}
            for r in rb:
                t = tps.get(r["impl"])
                vs = f"{t / tps['sdpa_naive']:.2f}×" if t and "sdpa_naive" in tps else ""
                us = f"{tps['tk_hydragen'] / t:.2f}×" if t and "tk_hydragen" in tps else ""
                tt = f"{t:,.0f}" if t else ""
                step = f"{float(r['median_step_us']):.0f}" if r["median_step_us"] else ""
                print(f"| {B} | {r['impl']} | {G} | {r['status'][:80]} | {tt} | {step} | {r['rel_err'][:6]} | {vs} | {us} |")
        print()
    print("\n".join(targets(d)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
