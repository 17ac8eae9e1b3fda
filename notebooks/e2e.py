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
# # End-to-end decode
#
# Reads `e2e.csv` (configuration 6 of BENCHMARKS.md: a Llama-shaped model with random weights, shared prompt,
# new tokens decoded with each attention implementation) and writes `figures/e2e.{pdf,png}`, `tables/e2e.tex` and
# `macros_e2e.tex`. Throughput is the CSV's tokens/s column where it has one; otherwise batch / median step time.

# %% tags=["parameters"]
data_dir = "../results/replay"
out_dir = "../paper/generated"
mode = "replay"

# %%
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path.cwd()))
import tkpaper as tp  # noqa: E402

data_dir, out_dir = Path(data_dir), Path(out_dir)
macros = tp.Macros("notebooks/e2e.py")
path = tp.e2e_file(data_dir)
e2e = tp.read_csv(path) if path else None
print("end-to-end CSV:", path, "absent" if e2e is None else f"{len(e2e)} rows")

# %%
THROUGHPUT_COLUMNS = ("tokens_per_s", "tok_per_s", "tokens_s", "throughput_tok_s")


def throughput(df: pd.DataFrame) -> tuple[pd.Series, str]:
    """(tokens/s per row, how it was obtained)."""
    for c in THROUGHPUT_COLUMNS:
        if c in df.columns:
            return pd.to_numeric(df[c], errors="coerce"), f"column {c}"
    return pd.to_numeric(df["batch"]) / (pd.to_numeric(df["median_us"]) * 1e-6), "batch / median_us (one token per sequence per step)"


if e2e is not None:
    ok = e2e[e2e["status"].astype(str).str.strip() == "ok"].copy()
    ok["label"] = [tp.impl_label(r) for _, r in ok.iterrows()]
    ok["tok_s"], how = throughput(ok)
    ok = ok[ok["tok_s"].notna()]
    print("throughput from", how)
    ok[["label", "batch", "tok_s"]]

# %%
why = "e2e.csv absent"
if e2e is not None and not len(ok):  # a file with no ok row: nothing measured to show, say why
    why = "no ok row in e2e.csv: " + "; ".join(sorted(set(e2e["status"].astype(str).str.split(":").str[0])))
    e2e = None
if e2e is None:
    tp.write_text(out_dir / "tables" / "e2e.tex", tp.tabular(["End-to-end decode"], [[f"{tp.NOT_RECORDED}: {why}"]]))
    fig = tp.not_recorded_figure("End-to-end decode throughput", why)
    for m in ("EtoeSpeedupMax", "EtoeBestImpl", "EtoeBatches", "EtoeBaseline", "EtoeHow"):
        macros.add(m, tp.NOT_RECORDED)
else:
    batches = sorted(ok["batch"].unique())
    impls = sorted(ok["label"].unique(), key=lambda s: (not tp.is_ours(s), s))
    graph = ok["label"].str.endswith(" (graph)")
    ok["mode"] = graph.map({True: "graph", False: "eager"})
    ok["impl"] = ok["impl"].astype(str)
    # Baseline: sdpa_naive (no sharing) timed the same way (eager against eager, CUDA graph against graph).
    base = "sdpa_naive" if (ok["impl"] == "sdpa_naive").any() else next((i for i in ok["impl"] if not tp.is_ours(i)), None)
    rows, speedups = [], []
    for b in batches:
        for impl in impls:
            r = ok[(ok["batch"] == b) & (ok["label"] == impl)]
            if not len(r):
                continue
            ref = ok[(ok["batch"] == b) & (ok["impl"] == base) & (ok["mode"] == r["mode"].iloc[0])]
            sp = float(r["tok_s"].iloc[0] / ref["tok_s"].iloc[0]) if len(ref) else float("nan")
            rows.append([b, impl, tp.fmt(r["tok_s"].iloc[0], 4), tp.fmt(sp)])
            if tp.is_ours(impl):
                speedups.append((sp, impl, b))
    others = e2e[e2e["status"].astype(str).str.strip() != "ok"]
    not_ok = others.groupby([others["impl"].astype(str), others["status"].astype(str)])["batch"].apply(
        lambda s: ", ".join(str(b) for b in sorted(set(s))))
    note = f"tokens/s from {how}; speedup against {base} timed the same way (eager or CUDA graph)." + (
        " Not ok: " + "; ".join(f"{impl} (batch {bs}): {st}" for (impl, st), bs in not_ok.items()) + "."
        if len(not_ok) else "")
    tp.write_text(out_dir / "tables" / "e2e.tex",
                  tp.tabular(["batch", "attention", "tokens/s", f"vs {base}"], rows, align="rlrr", caption_note=note))

    fig, ax = plt.subplots(figsize=(6, 3))
    width = 0.8 / max(len(impls), 1)
    for k, impl in enumerate(impls):
        g = ok[ok["label"] == impl].set_index("batch")["tok_s"].reindex(batches)
        color = tp.impl_color(impl)
        ax.bar([i + k * width for i in range(len(batches))], g.values, width, label=impl, edgecolor=color,
               color=color if impl.endswith("(graph)") else "white", hatch=None if impl.endswith("(graph)") else "//")
    ax.set_xticks([i + width * (len(impls) - 1) / 2 for i in range(len(batches))], [f"batch {b}" for b in batches])
    ax.set_ylabel("tokens / s")
    ax.set_title(f"end-to-end decode ({mode})", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()

    valid = [s for s in speedups if s[0] == s[0]]
    best = max(valid) if valid else None
    macros.add("EtoeSpeedupMax", tp.fmt(best[0]) if best else tp.NOT_RECORDED)
    macros.add("EtoeBestImpl", best[1] if best else tp.NOT_RECORDED)
    macros.add("EtoeBatches", ", ".join(str(b) for b in batches))
    macros.add("EtoeBaseline", f"{base} timed the same way" if base else tp.NOT_RECORDED)
    macros.add("EtoeHow", how)

tp.save_figure(fig, out_dir, "e2e")
macros.write(out_dir / "macros_e2e.tex")
print((out_dir / "macros_e2e.tex").read_text())
