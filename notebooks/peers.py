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
# # Every peer against the best tkprefix kernel
#
# Reads every `bench_<config>.csv` and writes `tables/peers.tex` (one row per peer, one column per configuration:
# geometric-mean speedup of the best tkprefix kernel over that peer), `figures/peers_speedup.{pdf,png}` (the same per
# configuration with min–max bars), `tables/peers_sharing.tex` (tree cases: the sharing each implementation's plan
# achieves against the tree's ideal) and `macros_peers.tex` (per peer: geomean, min and max with the case named, and
# `\PeersStrongest`, a paragraph on where each peer is strongest).
#
# Speedup of a case = the peer's median / the best tkprefix kernel's median on the same inputs in the same run, each
# in its faster timing mode (eager or CUDA graph), only where both rows are `ok` (checked against float64). A peer
# with no `ok` row in a configuration shows its most frequent status there; a peer absent from the data is
# "not recorded".

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
macros = tp.Macros("notebooks/peers.py")
frames = {n: df for n, p in tp.bench_files(data_dir).items() if (df := tp.read_csv(p)) is not None}
# Every peer the harness knows (issue 12), in the order of the table; peers found only in the data are appended.
PEERS = {
    "sdpa_naive": "PyTorch SDPA, prefix copied per sequence",
    "sdpa_hydragen": "Hydragen decomposition in PyTorch",
    "flashinfer_cascade": "FlashInfer multi-level cascade",
    "flashinfer_decode": "FlashInfer paged decode, shared pages, no cascade",
    "sglang_triton": "SGLang 0.2.13 Triton decode",
    "fasttree": "FastTree (MLSys 2025), Triton",
    "deft": "DeFT (ICLR 2025), Triton, fp16",
    "chunk_attn_upstream": "upstream ChunkAttention",
    "hydragen_upstream": "upstream Hydragen (flash-attn 2)",
}
for df in frames.values():
    for impl in df["impl"].astype(str).unique():
        if not tp.is_ours(impl) and not impl.startswith("torch_"):
            PEERS.setdefault(impl, "")
print("configurations:", list(frames) or "none")


# %% [markdown]
# ## Per case and peer

# %%
def case_speedups(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Rows (config, case, peer, speedup) for every case where the peer and a tkprefix kernel both ran ok."""
    ok = tp.ok_rows(df)
    ok["median_us"] = pd.to_numeric(ok["median_us"])
    cols = tp.case_columns(df)
    label_cols, _ = tp.label_columns(df, cols)
    out = []
    for key, g in ok.groupby(cols, sort=True, dropna=False):
        ours = g[g["impl"].map(tp.is_ours)]
        if not len(ours):
            continue
        best = ours.loc[ours["median_us"].idxmin()]
        label = tp.case_label(pd.Series(dict(zip(cols, key if isinstance(key, tuple) else (key,)))), label_cols)
        for peer, p in g[g["impl"].isin(PEERS)].groupby("impl"):
            out.append({"config": name, "case": label, "peer": peer, "peer_us": p["median_us"].min(),
                        "ours_us": best["median_us"], "ours_impl": best["impl"],
                        "speedup": p["median_us"].min() / best["median_us"]})
    return pd.DataFrame(out, columns=["config", "case", "peer", "peer_us", "ours_us", "ours_impl", "speedup"])


def peer_status(df: pd.DataFrame, peer: str) -> str:
    """Why a peer has no speedup in a configuration: its most frequent status there, or not recorded."""
    rows = df[df["impl"].astype(str) == peer]
    if not len(rows):
        return tp.NOT_RECORDED
    s = rows["status"].astype(str).str.strip()
    if (s == "ok").any():
        return "no case with ours ok"
    return s.value_counts().index[0]


sp = pd.concat([case_speedups(n, df) for n, df in frames.items()], ignore_index=True) if frames else case_speedups("", pd.DataFrame(
    columns=["impl", "status", "median_us"]))
print(sp.groupby(["peer", "config"])["speedup"].agg(["count", "min", "max"]).to_string() if len(sp) else "no speedups")


# %% [markdown]
# ## Table, macros and the paragraph on where each peer is strongest

# %%
def ratio_phrase(x: float) -> str:
    return f"tkprefix {tp.fmt(x)}$\\times$ faster" if x >= 1 else f"tkprefix {tp.fmt(1 / x)}$\\times$ slower"


def short_status(status: str) -> str:
    return status if status == tp.NOT_RECORDED else status.split(":")[0].strip()


rows, sentences = [], []
for peer, desc in PEERS.items():
    mine = sp[sp["peer"] == peer]
    row = [tp.tt(peer)]
    for name, df in frames.items():
        s = mine[mine["config"] == name]["speedup"]
        row.append(tp.fmt(tp.geomean(s)) if len(s) else short_status(peer_status(df, peer)))
    base = "Peers" + tp.macro_name(peer)
    if len(mine):
        lo, hi = mine.loc[mine["speedup"].idxmin()], mine.loc[mine["speedup"].idxmax()]
        row += [tp.fmt(tp.geomean(mine["speedup"])), f"{tp.fmt(lo['speedup'])}–{tp.fmt(hi['speedup'])}"]
        macros.add(base + "Geomean", tp.fmt(tp.geomean(mine["speedup"])))
        macros.add(base + "Cases", len(mine))
        macros.add(base + "Min", tp.fmt(lo["speedup"]))
        macros.add(base + "MinCase", f"{lo['config']} {lo['case']}")
        macros.add(base + "Max", tp.fmt(hi["speedup"]))
        macros.add(base + "MaxCase", f"{hi['config']} {hi['case']}")
        per_cfg = mine.groupby("config")["speedup"].apply(tp.geomean)
        cfg = per_cfg.idxmin()
        sentences.append(
            f"\\texttt{{{tp.tex_escape(peer)}}}" + (f" ({tp.tex_escape(desc)})" if desc else "")
            + f" is strongest in {tp.tex_escape(cfg)} ({ratio_phrase(per_cfg[cfg])} there, geometric mean of "
            f"{int((mine['config'] == cfg).sum())} cases); its best case is {tp.tex_escape(lo['case'])} of "
            f"{tp.tex_escape(lo['config'])} ({ratio_phrase(lo['speedup'])}, against "
            f"\\texttt{{{tp.tex_escape(lo['ours_impl'])}}}).")
    else:
        row += [tp.NOT_RECORDED, tp.NOT_RECORDED]
        for m in ("Geomean", "Min", "MinCase", "Max", "MaxCase"):
            macros.add(base + m, tp.NOT_RECORDED)
        macros.add(base + "Cases", 0)
        why = sorted({short_status(peer_status(df, peer)) for df in frames.values()}) or [tp.NOT_RECORDED]
        sentences.append(f"\\texttt{{{tp.tex_escape(peer)}}}: no case timed beside ours in this run "
                         f"({tp.tex_escape(', '.join(why))}).")
    rows.append(row)

header = ["peer"] + list(frames) + ["all (geomean)", "range"]
tp.write_text(out_dir / "tables" / "peers.tex",
              "\\resizebox{\\textwidth}{!}{%\n" + tp.tabular(header, rows, align="l" + "r" * (len(header) - 1)) + "}\n")
timed = sorted(set(sp["peer"]))
macros.add("PeersNumPeers", len(PEERS))
macros.add("PeersNumTimed", len(timed))
macros.add("PeersSpeedupGeomean", tp.fmt(tp.geomean(sp["speedup"])) if len(sp) else tp.NOT_RECORDED)
macros.add("PeersStrongest", "\n".join(sentences), raw=True)
macros.add("PeersStrongestItems", "\n".join("\\item " + s for s in sentences), raw=True)
macros.write(out_dir / "macros_peers.tex")
print((out_dir / "macros_peers.tex").read_text())


# %% [markdown]
# ## Figure: speedup over each peer, per configuration

# %%
def peers_figure():
    if not len(sp):
        return tp.not_recorded_figure("Speedup of tkprefix over each peer", "no case where a peer and ours ran ok")
    peers = [p for p in PEERS if p in timed]
    configs = list(frames)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(peers) + 2), 3.4))
    cmap = plt.get_cmap("tab10")
    for k, cfg in enumerate(configs):
        g = sp[sp["config"] == cfg].groupby("peer")["speedup"]
        xs, ys, lo, hi = [], [], [], []
        for i, p in enumerate(peers):
            if p in g.groups:
                s = g.get_group(p)
                gm = tp.geomean(s)
                xs.append(i + 0.7 * (k - (len(configs) - 1) / 2) / max(len(configs), 1))
                ys.append(gm)
                lo.append(gm - s.min())
                hi.append(s.max() - gm)
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], ls="none", marker="o", ms=4, capsize=2, color=cmap(k % 10), label=cfg)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_ylabel("peer median / best tkprefix median")
    ax.set_xticks(range(len(peers)), peers, rotation=30, ha="right", fontsize=8)
    ax.grid(axis="y", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, ncol=min(4, len(configs)), frameon=False)
    ax.set_title(f"geometric mean per configuration, bars min-max over its cases ({mode})", fontsize=9)
    fig.tight_layout()
    return fig


tp.save_figure(peers_figure(), out_dir, "peers_speedup")


# %% [markdown]
# ## Tree cases: sharing achieved against the ideal
#
# `sharing` = path tokens / KV tokens the implementation's plan reads per kv-head; `sharing_ideal` = path tokens /
# unique tokens of the tree (every shared token read once).

# %%
def sharing_table() -> str:
    parts = []
    for name, df in frames.items():
        if "sharing_ideal" not in df.columns or "sharing" not in df.columns:
            continue
        ok = tp.ok_rows(df)
        ok = ok[ok["sharing"].notna()]
        if not len(ok):
            continue
        impls = [i for i in dict.fromkeys(ok["impl"].astype(str)) if not i.startswith("torch_")]
        impls.sort(key=lambda s: (not tp.is_ours(s), s))
        rows = []
        heads = ok["q_heads"].astype(str) + "/" + ok["kv_heads"].astype(str)
        for (levels, dtype, h), g in ok.groupby(["levels", "dtype", heads], sort=False):
            tree = str(levels).split("=")[0].replace("tree:", "") + (f" H{h}" if heads.nunique() > 1 else "")
            row = [tree, dtype, tp.fmt(g["sharing_ideal"].iloc[0])]
            for impl in impls:
                v = g.loc[g["impl"].astype(str) == impl, "sharing"]
                row.append(tp.fmt(v.iloc[0]) if len(v) else "–")
            rows.append(row)
        parts.append(tp.tabular(["tree", "dtype", "ideal"] + [tp.stacked(i) for i in impls], rows,
                                align="llr" + "r" * len(impls)))
    return "".join(parts) or tp.not_recorded_table("Sharing of tree cases (bench_*.csv with sharing columns)")


tp.write_text(out_dir / "tables" / "peers_sharing.tex", sharing_table())
print((out_dir / "tables" / "peers_sharing.tex").read_text())
