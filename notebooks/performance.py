# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Performance against every peer, with rooflines
#
# Reads every `bench_<config>.csv` (one per sweep configuration; schema in docs/design.md) and writes:
# `figures/perf_latency.{pdf,png}` (median latency, p20–p80 bars, unique-bytes roofline),
# `figures/perf_roofline.{pdf,png}` (% of roofline per implementation), `tables/perf_summary.tex`,
# `tables/perf_detail.tex` and `macros_performance.tex`.
#
# Speedups are ratios inside one run (same inputs, interleaved), as BENCHMARKS.md asks: for each case, the best
# tkprefix kernel (`tk_*`) against the best peer that ran correctly (`status == ok`). Rows that are `wrong`, `oom` or
# `unavailable` are counted and shown in the detail table, never timed.

# %% tags=["parameters"]
data_dir = "../results/replay"
out_dir = "../paper/generated"
mode = "replay"

# %%
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path.cwd()))
import tkpaper as tp  # noqa: E402

data_dir, out_dir = Path(data_dir), Path(out_dir)
macros = tp.Macros("notebooks/performance.py")
files = tp.bench_files(data_dir)
frames = {name: tp.read_csv(path) for name, path in files.items()}
frames = {k: v for k, v in frames.items() if v is not None}
print("bench CSVs:", {k: len(v) for k, v in frames.items()} or "none")

# %% [markdown]
# ## Per case: best tkprefix kernel vs best peer

# %%
def per_case(df: pd.DataFrame) -> pd.DataFrame:
    """One row per case: roofline, best ours (impl, µs), best peer (impl, µs), speedup = peer / ours."""
    ok = tp.ok_rows(df)
    cols = tp.case_columns(df)
    label_cols, _ = tp.label_columns(df, cols)
    ok["label"] = [tp.impl_label(r) for _, r in ok.iterrows()]
    ok["median_us"] = pd.to_numeric(ok["median_us"])
    out = []
    for key, g in ok.groupby(cols, sort=True, dropna=False):
        row = dict(zip(cols, key if isinstance(key, tuple) else (key,)))
        row["case"] = tp.case_label(pd.Series(row), label_cols)
        row["roofline_us"] = pd.to_numeric(g.get("roofline_us"), errors="coerce").max() if "roofline_us" in g else math.nan
        # the floor under the method (runs since 6ce90e9; docs/design.md): launch + the L2 flush's write-back
        row["floor_us"] = pd.to_numeric(g.get("floor_us"), errors="coerce").max() if "floor_us" in g else math.nan
        ours = g[g["impl"].map(tp.is_ours)]
        peers = g[~g["impl"].map(tp.is_ours)]
        for side, part in (("ours", ours), ("peer", peers)):
            if len(part):
                best = part.loc[part["median_us"].idxmin()]
                row[f"{side}_impl"], row[f"{side}_us"] = best["label"], float(best["median_us"])
            else:
                row[f"{side}_impl"], row[f"{side}_us"] = tp.NOT_RECORDED, math.nan
        row["speedup"] = row["peer_us"] / row["ours_us"]
        row["ours_pct_roof"] = 100 * row["roofline_us"] / row["ours_us"]
        row["ours_pct_floor"] = 100 * row["floor_us"] / row["ours_us"]
        out.append(row)
    return pd.DataFrame(out, columns=cols + ["case", "roofline_us", "ours_impl", "ours_us", "peer_impl", "peer_us",
                                             "speedup", "ours_pct_roof", "ours_pct_floor"])


cases = {name: per_case(df) for name, df in frames.items()}
for name, c in cases.items():
    print(name)
    print(c[["case", "roofline_us", "ours_impl", "ours_us", "peer_impl", "peer_us", "speedup"]].to_string())

# %% [markdown]
# ## Summary table and macros

# %%
def status_counts(df: pd.DataFrame) -> str:
    s = df["status"].astype(str).str.split(":").str[0].str.strip()
    counts = s[s != "ok"].value_counts()
    return ", ".join(f"{n} {k}" for k, n in counts.items()) or "none"


macros.add("PerfNumConfigs", len(frames) if frames else tp.NOT_RECORDED)
all_speedups = []
if not frames:
    tp.write_text(out_dir / "tables" / "perf_summary.tex", tp.not_recorded_table("Performance (bench_*.csv)"))
    for m in ("PerfNumRows", "PerfSpeedupGeomean", "PerfSpeedupMin", "PerfSpeedupMax", "PerfOursPctRoofMedian",
              "PerfOursPctFloorMedian"):
        macros.add(m, tp.NOT_RECORDED)
else:
    rows = []
    for name, df in frames.items():
        c = cases[name]
        sp = c["speedup"].dropna()
        all_speedups += list(sp)
        best_peer = c["peer_impl"].mode().iloc[0] if len(c) else tp.NOT_RECORDED
        rows.append([name, len(c), tp.fmt(tp.geomean(sp)) if len(sp) else tp.NOT_RECORDED,
                     f"{tp.fmt(sp.min())}–{tp.fmt(sp.max())}" if len(sp) else tp.NOT_RECORDED, best_peer,
                     tp.fmt(c["ours_pct_roof"].median(), 2) if len(c) else tp.NOT_RECORDED, status_counts(df)])
        base = tp.macro_name("perf", name)
        macros.add(base + "Speedup", tp.fmt(tp.geomean(sp)) if len(sp) else tp.NOT_RECORDED)
        macros.add(base + "Cases", len(c))
    header = ["configuration", "cases timed", "speedup (geomean)", "speedup range", "most frequent best peer",
              "ours % roofline (median)", "rows not ok"]
    tp.write_text(out_dir / "tables" / "perf_summary.tex",
                  "\\resizebox{\\textwidth}{!}{%\n" + tp.tabular(header, rows, align="lrrrlrl") + "}\n")
    macros.add("PerfNumRows", sum(len(df) for df in frames.values()))
    macros.add("PerfSpeedupGeomean", tp.fmt(tp.geomean(all_speedups)) if all_speedups else tp.NOT_RECORDED)
    macros.add("PerfSpeedupMin", tp.fmt(min(all_speedups)) if all_speedups else tp.NOT_RECORDED)
    macros.add("PerfSpeedupMax", tp.fmt(max(all_speedups)) if all_speedups else tp.NOT_RECORDED)
    pct = pd.concat([c["ours_pct_roof"] for c in cases.values()]).dropna()
    macros.add("PerfOursPctRoofMedian", tp.fmt(pct.median(), 2) if len(pct) else tp.NOT_RECORDED)
    pf = pd.concat([c["ours_pct_floor"] for c in cases.values()]).dropna()
    macros.add("PerfOursPctFloorMedian", tp.fmt(pf.median(), 2) + "\\,\\%" if len(pf) else "(not measured in this run)",
               raw=True)
macros.write(out_dir / "macros_performance.tex")
print((out_dir / "macros_performance.tex").read_text())

# %% [markdown]
# ## Detail tables: every implementation's median per case (µs), status where not ok

# %%
def detail_table(name: str, df: pd.DataFrame) -> str:
    """Rows: case x timing mode (eager / CUDA graph); columns: implementations; cells: median µs or the status."""
    cols = tp.case_columns(df)
    label_cols, const = tp.label_columns(df, cols)
    df = df.copy()
    df["case"] = [tp.case_label(r, label_cols) for _, r in df.iterrows()]
    graph = df["graph"].astype(str).str.strip().str.lower().isin(["1", "true", "yes", "graph"]) \
        if "graph" in df.columns else pd.Series(False, index=df.index)
    df["mode"] = graph.map({True: "graph", False: "eager"})
    impls = sorted(df["impl"].astype(str).unique(), key=lambda s: (not tp.is_ours(s), s))
    rows = []
    for (case, mode), g in df.groupby(["case", "mode"], sort=False):
        roof = pd.to_numeric(g.get("roofline_us"), errors="coerce").max() if "roofline_us" in g else math.nan
        row = [case, mode, tp.fmt(roof)]
        for impl in impls:
            r = g[g["impl"].astype(str) == impl]
            if not len(r):
                row.append("–")
            elif str(r["status"].iloc[0]).strip() == "ok":
                row.append(tp.fmt(r["median_us"].iloc[0]))
            else:
                row.append(str(r["status"].iloc[0]).split(":")[0])
        rows.append(row)
    body = tp.tabular(["case", "timing", "roofline"] + [tp.stacked(i) for i in impls], rows,
                      align="llr" + "r" * len(impls), long=True)
    return (f"\\paragraph{{{tp.tex_escape(name)}}} median µs per implementation "
            f"(from bench\\_{tp.tex_escape(name)}.csv{'; every case: ' + tp.tex_escape(const) if const else ''}).\n{{\\scriptsize\\setlength{{\\tabcolsep}}{{3pt}}\n{body}}}\n\n")


if frames:
    text = "".join(detail_table(n, df) for n, df in frames.items())
else:
    text = tp.not_recorded_table("Per-configuration results (bench_*.csv)")
tp.write_text(out_dir / "tables" / "perf_detail.tex", text.replace("µs", "$\\mu$s"))

# %% [markdown]
# ## Figures

# %%
def latency_figure(selected=None):
    if not frames:
        return tp.not_recorded_figure("Median latency per configuration", "no bench_*.csv in this run's data")
    chosen = {k: v for k, v in frames.items() if selected is None or k in selected}
    n = len(chosen)
    width, height = (7.5, 4.6) if n == 1 else (10, 2.9 * n)  # one configuration: sized for the page width
    fig, axes = plt.subplots(n, 1, figsize=(width, height), squeeze=False)
    handles = {}
    for ax, (name, df) in zip(axes[:, 0], chosen.items()):
        ok = tp.ok_rows(df)
        cols = tp.case_columns(df)
        label_cols, const = tp.label_columns(df, cols)
        ok["label"] = [tp.impl_label(r) for _, r in ok.iterrows()]
        ok["case"] = [tp.case_label(r, label_cols) for _, r in ok.iterrows()]
        order = list(dict.fromkeys(ok.sort_values(cols)["case"]))
        xpos = {c: i for i, c in enumerate(order)}
        impls = sorted(ok["label"].unique(), key=lambda s: (not tp.is_ours(s), s))
        for k, impl in enumerate(impls):
            g = ok[ok["label"] == impl].sort_values(cols)
            x = g["case"].map(xpos) + 0.6 * (k - (len(impls) - 1) / 2) / max(len(impls), 1)
            y = pd.to_numeric(g["median_us"])
            lo = y - pd.to_numeric(g.get("p20_us", y), errors="coerce").fillna(y)
            hi = pd.to_numeric(g.get("p80_us", y), errors="coerce").fillna(y) - y
            color, graph = tp.impl_color(impl), impl.endswith("(graph)")
            h = ax.errorbar(x, y, yerr=[lo.clip(lower=0), hi.clip(lower=0)], ls="none", color=color, capsize=1.5,
                            marker="o" if tp.is_ours(impl) else "s", ms=4 if tp.is_ours(impl) else 3,
                            mfc=color if graph else "white", mew=1, elinewidth=0.8, label=impl)
            handles.setdefault(impl, h)
        if "roofline_us" in ok:
            roof = ok.groupby("case")["roofline_us"].max().reindex(order)
            handles.setdefault("roofline", ax.plot(range(len(order)), pd.to_numeric(roof), "k_", ms=10, mew=2,
                                                   label="roofline")[0])
        ax.set_yscale("log")
        ax.set_ylabel("median µs")
        ax.set_title(f"{name}" + (f" (every case: {const})" if const else ""), fontsize=9)
        ax.set_xticks(range(len(order)), order, rotation=60, ha="right", fontsize=6)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.grid(axis="y", lw=0.3, alpha=0.5)
    labels = sorted(handles, key=lambda s: (s != "roofline", not tp.is_ours(s), s))
    fig.legend([handles[k] for k in labels], labels, loc="upper center", ncol=4 if n == 1 else 5, fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"hollow: eager, filled: CUDA graph; bars p20-p80; data: {mode}", fontsize=8, y=0.005, va="bottom")
    rows = math.ceil(len(handles) / (4 if n == 1 else 5))
    fig.tight_layout(rect=(0, 0.02, 1, 1 - (0.16 * rows + 0.1) / height))
    return fig


def roofline_figure():
    if not frames:
        return tp.not_recorded_figure("% of roofline per implementation", "no bench_*.csv in this run's data")
    parts = []
    for name, df in frames.items():
        ok = tp.ok_rows(df)
        ok["label"] = [tp.impl_label(r) for _, r in ok.iterrows()]
        ok["config"] = name
        parts.append(ok)
    allok = pd.concat(parts)
    allok["pct"] = 100 * pd.to_numeric(allok["roofline_us"], errors="coerce") / pd.to_numeric(allok["median_us"])
    impls = sorted(allok["label"].unique(), key=lambda s: (not tp.is_ours(s), s))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    data = [allok.loc[allok["label"] == i, "pct"].dropna() for i in impls]
    box = ax.boxplot(data, showfliers=True, patch_artist=True)
    for patch, impl in zip(box["boxes"], impls):
        patch.set_facecolor(tp.impl_color(impl) if impl.endswith("(graph)") else "white")
        patch.set_edgecolor(tp.impl_color(impl))
    ax.set_xticks(range(1, len(impls) + 1), impls, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% of unique-bytes roofline")
    ax.axhline(100, ls="--", lw=0.8, color="gray")
    ax.set_title(f"all configurations, one point per case ({mode})", fontsize=10)
    fig.tight_layout()
    return fig


tp.save_figure(latency_figure(), out_dir, "perf_latency")

# One figure per configuration for the paper (legible at page width), listed in tables/perf_figures.tex.
parts = []
for name in frames:
    fname = "perf_latency_" + tp.macro_name(name)
    tp.save_figure(latency_figure([name]), out_dir, fname)
    parts.append("\\begin{figure}[tbp]\\centering\n"
                 f"\\includegraphics[width=\\linewidth]{{generated/figures/{fname}.pdf}}\n"
                 f"\\caption{{Median latency per case and implementation, configuration {tp.tex_escape(name)} "
                 "(hollow: eager, filled: CUDA graph; bars: p20--p80; black: unique-bytes roofline). "
                 f"\\generated{{figures/{tp.tex_escape(fname)}.pdf from bench\\_{tp.tex_escape(name)}.csv}}}}"
                 f"\\label{{{'fig:latency' if not parts else 'fig:latency:' + tp.macro_name(name)}}}"
                 "\n\\end{figure}\n")
if not parts:
    parts.append("\\begin{figure}[tbp]\\centering\n\\includegraphics[width=0.8\\linewidth]"
                 "{generated/figures/perf_latency.pdf}\n\\caption{Median latency: "
                 + tp.NOT_RECORDED + ".}\n\\end{figure}\n")
tp.write_text(out_dir / "tables" / "perf_figures.tex", "".join(parts))
tp.save_figure(roofline_figure(), out_dir, "perf_roofline")
