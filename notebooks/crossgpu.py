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
# # Across GPUs, and a rerun on the same GPU
#
# Reads this run's data and every recorded run (config `recorded_dirs`: one folder per GPU, the GPU taken from each
# run's provenance.json; runs of a GPU already seen are skipped), and the comparison of this run with a rerun on the
# same GPU (`tkprefix compare ... --json`, rule `compare_rerun`). Writes `figures/crossgpu.{pdf,png}` (per
# configuration, ours against each peer, one bar per GPU), `tables/crossgpu.tex` and `macros_crossgpu.tex` (which
# claims hold on every recorded GPU, which differ, and how each implementation's time changes between the GPUs).
# With one GPU recorded, the text says so and the other GPU's numbers are "not recorded".

# %% tags=["parameters"]
data_dir = "../results/replay"
out_dir = "../paper/generated"
mode = "replay"
runs = ""  # recorded run folders, comma-separated (the ones of config recorded_dirs that exist)
rerun = ""  # JSON summary of `tkprefix compare <this run> <rerun>`, or "" when no rerun is recorded

# %%
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path.cwd()))
import tkpaper as tp  # noqa: E402
from tkprefix.bench import compare as cmp  # noqa: E402
from tkprefix.bench.record import gpu_slug  # noqa: E402

data_dir, out_dir = Path(data_dir), Path(out_dir)
macros = tp.Macros("notebooks/crossgpu.py")

gpus = {}  # short GPU name -> {"dir", "name", "rows", "prov"}; the first run of each GPU wins (this run's first)
for d in [data_dir] + [Path(r) for r in str(runs).split(",") if r]:
    name = cmp.gpu_name(d)
    if name is None or not (list(d.glob("bench_*.csv")) or (d / "e2e.csv").is_file()):
        continue
    short = gpu_slug(name).upper()
    if short not in gpus:
        prov = tp.read_json(d / "provenance.json")
        jobs = sorted(d.glob("jobs/*/provenance.json"))  # a live run: the measured ceilings are in its bench jobs'
        if "ceilings" not in prov and jobs:
            prov["ceilings"] = tp.read_json(jobs[0]).get("ceilings", {})
        gpus[short] = {"dir": d, "name": name, "rows": cmp.load_run(d), "prov": prov}
order = sorted(gpus)
print({k: (str(v["dir"]), v["name"], len(v["rows"])) for k, v in gpus.items()})


def gpu_list(names) -> str:
    names = list(names)
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


# %% [markdown]
# ## Ours against each peer, per configuration and GPU

# %%
sp = {g: cmp.peer_speedups(gpus[g]["rows"]).set_index(["config", "ours", "peer"])["geomean"] for g in order}
table = pd.DataFrame(sp) if sp else pd.DataFrame()
if len(table):
    table = table.sort_index()
print(table.to_string() if len(table) else "no speedups")


def verdict(row: pd.Series) -> str:
    v = row.dropna()
    if len(v) < len(order):
        return "not on every GPU"
    if (v > 1).all():
        return "ours faster on all" if len(order) > 1 else "ours faster"
    if (v <= 1).all():
        return "ours slower on all" if len(order) > 1 else "ours slower"
    return "differs"


if len(table):
    table["verdict"] = table.apply(verdict, axis=1)

macros.add("CrossNumGPUs", len(order) if order else tp.NOT_RECORDED)
macros.add("CrossGPUs", gpu_list(order) if order else tp.NOT_RECORDED)
full = table[table["verdict"] != "not on every GPU"] if len(table) else table
hold = full[full["verdict"].str.startswith("ours faster")] if len(full) else full
slower = full[full["verdict"].str.startswith("ours slower")] if len(full) else full
differ = full[full["verdict"] == "differs"] if len(full) else full
macros.add("CrossClaims", len(full) if len(table) else tp.NOT_RECORDED)
macros.add("CrossHold", len(hold) if len(table) else tp.NOT_RECORDED)
macros.add("CrossSlower", len(slower) if len(table) else tp.NOT_RECORDED)
macros.add("CrossDiffer", len(differ) if len(table) else tp.NOT_RECORDED)


def pair_text(idx, row) -> str:
    cfg, ours, peer = idx
    vals = ", ".join(f"{tp.fmt(row[g])}$\\times$ on the {g}" for g in order)
    return f"{tp.tex_escape(cfg)}: {tp.tex_escape(ours)} against {tp.tex_escape(peer)} ({vals})"


differ_list = "; ".join(pair_text(i, r) for i, r in differ.iterrows()) if len(differ) else "none"
slower_list = "; ".join(pair_text(i, r) for i, r in slower.iterrows()) if len(slower) else "none"
macros.add("CrossDifferList", differ_list, raw=True)
macros.add("CrossSlowerList", slower_list, raw=True)
if not len(table):
    summary_text = hold_text = f"Speedups per GPU: {tp.NOT_RECORDED}"
elif len(order) == 1:
    summary_text = (f"Only the {order[0]} run is recorded: ours is faster in {len(hold)} of {len(full)} "
                    "(configuration, ours, peer) comparisons; a run on another GPU enters Section~\\ref{sec:crossgpu}")
    hold_text = (f"With one GPU recorded, this compares nothing across GPUs. On the {order[0]}, ours is faster in "
                 f"{len(hold)} of the {len(full)} (configuration, ours, peer) comparisons and slower in "
                 f"{len(slower)} ({slower_list})")
else:
    both = "both" if len(order) == 2 else f"all {len(order)}"
    summary_text = (f"Recorded runs on the {gpu_list(order)}: of {len(full)} (configuration, ours, peer) "
                    f"comparisons, ours is faster on {both} GPUs in {len(hold)}, slower on {both} in {len(slower)}, "
                    f"and the verdict differs between them in {len(differ)} (Section~\\ref{{sec:crossgpu}})")
    hold_text = (f"Of the {len(full)} (configuration, ours, peer) comparisons measured on the {gpu_list(order)}, ours "
                 f"is faster on {both} in {len(hold)}, slower on {both} in {len(slower)} ({slower_list}), and the "
                 f"verdict differs between the GPUs in {len(differ)} ({differ_list})")
macros.add("CrossSummary", summary_text, raw=True)


def run_commit(g: str) -> str:
    return str((gpus[g]["prov"].get("project") or {}).get("commit") or "")[:7]


# Each recorded run names the project commit it measured: runs of different commits compare code as well as GPUs.
commits = {g: run_commit(g) for g in order}
runs_text = "; ".join(f"the {g} run measured commit {tp.tt(c) if c else tp.NOT_RECORDED}" for g, c in commits.items())
if len(set(commits.values())) > 1:
    runs_text += (" (different commits: where a kernel changed between them, a difference between the GPUs is the "
                  "code's as well as the GPU's)")
macros.add("CrossRuns", (runs_text[0].upper() + runs_text[1:]) if order else tp.NOT_RECORDED, raw=True)
macros.add("CrossHoldText", hold_text, raw=True)

# %% [markdown]
# ## How each implementation's time changes between the GPUs, and why

# %%
def ceiling(g: str, key: str) -> float:
    v = tp.find_key(tp.flatten(gpus[g]["prov"]), key)
    return float(v) if v is not None else math.nan


def pct_roofline_ours(g: str) -> float:
    rows = gpus[g]["rows"]
    ok = rows[(rows["status"] == "ok") & rows["impl"].str.startswith("tk_")]
    return pd.to_numeric(ok.get("pct_roofline"), errors="coerce").median() if len(ok) else math.nan


why = []
if len(order) < 2:
    only = order[0] if order else None
    source = tp.read_json(gpus[only]["dir"] / "manifest.json").get("source_dir") if only else None
    why.append((f"Only one GPU is recorded (the {only}, {tp.tt(source or gpus[only]['dir'])})" if only else
                "No GPU run is recorded") + ", so whether these claims hold on another Hopper GPU is not recorded; "
               "a run recorded with \\code{tkprefix record} into \\code{data/<gpu>} and listed in the configuration's "
               "\\code{recorded\\_dirs} enters this section")
    macros.add("CrossTimeChange", tp.NOT_RECORDED)
else:
    ref = order[0]
    changes = []
    for g in order[1:]:
        s = cmp.summarize(cmp.match(gpus[ref]["rows"], gpus[g]["rows"]))
        gain = {impl: 1 / st["geomean"] for impl, st in s["per_impl"].items() if st["geomean"]}
        ours = {i: v for i, v in gain.items() if i.startswith("tk_")}
        peers = {i: v for i, v in gain.items() if not i.startswith("tk_")}
        bw, gemm = ceiling(g, "copy_bw_bytes_per_s") / ceiling(ref, "copy_bw_bytes_per_s"), \
            ceiling(g, "gemm_flops_per_s") / ceiling(ref, "gemm_flops_per_s")
        listing = ", ".join(f"{tp.tex_escape(i)} {tp.fmt(v)}$\\times$" for i, v in sorted(gain.items(),
                                                                                          key=lambda kv: -kv[1]))
        changes.append(listing)
        ceilings = (f"the measured copy bandwidth changes by {tp.fmt(bw)}$\\times$ and the bf16 GEMM rate by "
                    f"{tp.fmt(gemm)}$\\times$" if not (math.isnan(bw) or math.isnan(gemm)) else
                    f"the change of the measured ceilings is {tp.NOT_RECORDED}")
        why.append(f"From the {ref} to the {g} {ceilings}; over the {s['ok_both']} cases timed on both, "
                   f"each implementation runs this much faster on the {g} (geometric mean of {ref} time over {g} "
                   f"time): {listing}")
        if ours and peers:
            go, gp = tp.geomean(ours.values()), tp.geomean(peers.values())
            if gp > go * 1.02:
                why.append(f"The peers gain more than ours ({tp.fmt(gp)}$\\times$ against {tp.fmt(go)}$\\times$, "
                           "geometric means): higher bandwidth shortens the time a kernel spends reading memory, so "
                           "a kernel that reads more bytes per step (a prefix-oblivious one reads the shared prefix "
                           "once per sequence) or spends a larger share of its time on memory traffic gains more, "
                           "while ours read the prefix once and spend a larger share on launch, merge and compute; "
                           f"so our speedups are smaller on the {g}")
            elif go > gp * 1.02:
                why.append(f"Ours gain more than the peers ({tp.fmt(go)}$\\times$ against {tp.fmt(gp)}$\\times$, "
                           f"geometric means), so our speedups are larger on the {g}")
            else:
                why.append(f"Ours and the peers gain alike ({tp.fmt(go)}$\\times$ and {tp.fmt(gp)}$\\times$, "
                           "geometric means), so the speedups carry over")
            more = [i for i, v in sorted(peers.items()) if v > go * 1.02]
            less = [i for i, v in sorted(peers.items()) if v < go / 1.02]
            per_peer = [f"against {', '.join(tp.tex_escape(i) for i in grp)}, which gain{'s' if len(grp) == 1 else ''} "
                        f"{word} than ours, our speedups are {size} on the {g}"
                        for grp, word, size in ((more, "more", "smaller"), (less, "less", "larger")) if grp]
            if per_peer:
                why.append("Per peer, " + "; ".join(per_peer) + (
                    f". A gain near the bandwidth ratio ({tp.fmt(bw)}$\\times$) marks an implementation bound by "
                    f"memory reads on both GPUs; one near the GEMM-rate ratio ({tp.fmt(gemm)}$\\times$), one bound "
                    "by compute or launches" if not (math.isnan(bw) or math.isnan(gemm)) else ""))
        why.append("our kernels reach a median of " + " and ".join(
            f"{tp.fmt(pct_roofline_ours(x), 2)}\\,\\% ({x})" for x in (ref, g)) + " of each GPU's unique-bytes roofline")
    macros.add("CrossTimeChange", "; ".join(changes), raw=True)
macros.add("CrossWhy", ". ".join(w[0].upper() + w[1:] for w in why) + ".", raw=True)

# %% [markdown]
# ## A rerun on the same GPU (`tkprefix compare`)

# %%
summary = json.loads(Path(rerun).read_text()) if rerun and Path(rerun).is_file() else None
if summary and summary["all"]["rows"]:
    a = summary["all"]
    if summary["a"]["gpu"] != summary["b"]["gpu"]:
        print(f"warning: the rerun ran on {summary['b']['gpu']}, the run shown on {summary['a']['gpu']}")
    macros.add("RerunGPU", summary["b"]["gpu"] or tp.NOT_RECORDED)
    macros.add("RerunDir", tp.tt(summary["b"]["path"].split("/data/", 1)[-1] if "/data/" in summary["b"]["path"]
                                 else summary["b"]["path"]), raw=True)
    macros.add("RerunRows", a["rows"])
    macros.add("RerunWithinFive", tp.fmt(100 * a["within_5pct"], 3))
    macros.add("RerunWithinTen", tp.fmt(100 * a["within_10pct"], 3))
    macros.add("RerunGeomean", tp.fmt(a["geomean"]))
    macros.add("RerunMin", tp.fmt(a["min"]))
    macros.add("RerunMax", tp.fmt(a["max"]))
    macros.add("RerunText", f"A second run on the {tp.tex_escape(summary['b']['gpu'] or 'same GPU')} agrees with the "
               f"run shown on {tp.fmt(100 * a['within_10pct'], 3)}\\,\\% of the {a['rows']} rows that are ok in "
               f"both within 10\\,\\% ({tp.fmt(100 * a['within_5pct'], 3)}\\,\\% within 5\\,\\%); the ratio of its "
               f"median times to this run's has a geometric mean of {tp.fmt(a['geomean'])} (range "
               f"{tp.fmt(a['min'])}--{tp.fmt(a['max'])})", raw=True)
else:
    for m in ("RerunGPU", "RerunDir", "RerunRows", "RerunWithinFive", "RerunWithinTen", "RerunGeomean", "RerunMin",
              "RerunMax"):
        macros.add(m, tp.NOT_RECORDED)
    macros.add("RerunText", f"A second run on the same GPU is {tp.NOT_RECORDED} (a run recorded with "
               "\\code{tkprefix record --to data/<gpu>/rerun}, or the configuration's \\code{rerun\\_dir}, enters "
               "here)", raw=True)
macros.write(out_dir / "macros_crossgpu.tex")
print((out_dir / "macros_crossgpu.tex").read_text())

# %% [markdown]
# ## Table and figure

# %%
if len(table):
    rows = [[cfg, ours, peer] + [tp.fmt(r[g]) if not math.isnan(r[g]) else "–" for g in order] + [r["verdict"]]
            for (cfg, ours, peer), r in table.iterrows()]
    text = tp.tabular(["configuration", "ours", "peer"] + [f"{g} (peer / ours)" for g in order] + ["on every GPU"],
                      rows, align="lll" + "r" * len(order) + "l", long=True)
else:
    text = tp.not_recorded_table("Speedups per GPU (bench_*.csv of the recorded runs)")
tp.write_text(out_dir / "tables" / "crossgpu.tex", text)


def crossgpu_figure():
    if not len(table):
        return tp.not_recorded_figure("Ours against each peer, per GPU", "no recorded run with bench_*.csv")
    configs = list(dict.fromkeys(table.index.get_level_values(0)))
    ncols = 3 if len(configs) > 2 else len(configs)
    nrows = math.ceil(len(configs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    width = 0.8 / len(order)
    for ax, cfg in zip(axes.flat, configs):
        part = table.loc[cfg]
        y = range(len(part))
        for k, g in enumerate(order):
            ax.barh([i + (k - (len(order) - 1) / 2) * width for i in y], part[g], height=width, color=colors[k % 4],
                    label=g)
        ax.axvline(1, color="k", lw=0.8)
        ax.set_xscale("log")
        lo, hi = min(0.5, part[order].min().min() / 1.2), part[order].max().max() * 1.3
        ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100, 200) if lo <= t <= hi]
        ax.set_xlim(lo, hi)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_yticks(list(y), [f"{o.replace('tk_', '')} / {p}" for o, p in part.index], fontsize=6)
        ax.invert_yaxis()
        ax.set_title(cfg, fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
        ax.grid(axis="x", lw=0.3, alpha=0.5)
    for ax in list(axes.flat)[len(configs):]:
        ax.axis("off")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper center", ncol=len(order), fontsize=8,
               frameon=False)
    fig.supxlabel("peer median / our median (geometric mean over cases; > 1: ours faster)", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


tp.save_figure(crossgpu_figure(), out_dir, "crossgpu")
