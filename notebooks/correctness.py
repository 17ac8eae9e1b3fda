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
# # Correctness of the tkprefix kernels
#
# Reads `check.csv` (written by `tkprefix check`: every TK op against the float64 reference on random, odd-sized
# shapes, outputs poisoned before each run) and writes the paper's correctness table, figure and macros.
# A missing file gives "not recorded", never a number.

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
macros = tp.Macros("notebooks/correctness.py")
check = tp.read_csv(data_dir / "check.csv")
print("check.csv:", "absent" if check is None else f"{len(check)} rows")

# %% [markdown]
# ## Group the checks by operation and implementation

# %%
def group_key(df: pd.DataFrame) -> list[str]:
    """The columns that name what was checked (op and implementation), whichever the CSV has."""
    return [c for c in ("op", "impl", "backend", "kernel", "dtype") if c in df.columns] or ["config"]


def passed(df: pd.DataFrame) -> pd.Series:
    """A row passed when its status says ok/pass, or its `passed` column is true."""
    if "passed" in df.columns:
        return df["passed"].astype(str).str.lower().isin(["true", "1", "yes"])
    return df["status"].astype(str).str.strip().str.lower().str.startswith(("ok", "pass"))


if check is not None:
    check = check.copy()
    check["rel_err"] = pd.to_numeric(check["rel_err"], errors="coerce")
    check["passed"] = passed(check)
    keys = group_key(check)
    tol_col = next((c for c in ("tol", "rtol", "tolerance") if c in check.columns), None)
    agg = {"cases": ("rel_err", "size"), "passed": ("passed", "sum"), "max_err": ("rel_err", "max"),
           "median_err": ("rel_err", "median")}
    if tol_col:
        agg["tol"] = (tol_col, "max")
    if "all_written" in check.columns:  # outputs poisoned with NaN before the run: every row was overwritten
        check["all_written"] = pd.to_numeric(check["all_written"], errors="coerce").fillna(0).astype(bool)
        agg["written"] = ("all_written", "sum")
    summary = check.groupby(keys, sort=True).agg(**agg).reset_index()
else:
    summary = None
summary

# %% [markdown]
# ## Table, figure and macros

# %%
if summary is None:
    tp.write_text(out_dir / "tables" / "correctness.tex", tp.not_recorded_table("Correctness (check.csv)"))
    fig = tp.not_recorded_figure("Correctness: relative error per case", "check.csv absent")
    macros.add("CheckCases", tp.NOT_RECORDED)
    macros.add("CheckPassed", tp.NOT_RECORDED)
    macros.add("CheckFailed", tp.NOT_RECORDED)
    macros.add("CheckMaxRelErr", tp.NOT_RECORDED)
    macros.add("CheckOps", tp.NOT_RECORDED)
else:
    written = "written" in summary.columns
    header = (keys + ["cases", "passed"] + (["all rows written"] if written else [])
              + ["max rel. err.", "median rel. err."] + (["tolerance"] if tol_col else []))
    rows = []
    for _, r in summary.iterrows():
        row = ([r[k] for k in keys] + [int(r["cases"]), int(r["passed"])] + ([int(r["written"])] if written else [])
               + [tp.fmt_err(r["max_err"]), tp.fmt_err(r["median_err"])])
        if tol_col:
            row.append(tp.fmt_err(r["tol"]))
        rows.append(row)
    tp.write_text(out_dir / "tables" / "correctness.tex",
                  tp.tabular(header, rows, align="l" * len(keys) + "r" * (len(header) - len(keys))))

    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    labels = check[keys].astype(str).agg(" / ".join, axis=1)
    order = sorted(labels.unique())
    for i, lab in enumerate(order):
        errs = check.loc[labels == lab, "rel_err"]
        ok = check.loc[labels == lab, "passed"]
        ax.scatter([i] * int(ok.sum()), errs[ok], marker="o", s=14, color="tab:blue", label="passed" if i == 0 else None)
        if (~ok).any():
            ax.scatter([i] * int((~ok).sum()), errs[~ok], marker="x", s=30, color="tab:red",
                       label="failed" if i == 0 else None)
    if tol_col:
        for tol in sorted(check[tol_col].dropna().unique()):
            ax.axhline(float(tol), ls="--", lw=0.8, color="gray")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(r"$\|o-o_\mathrm{ref}\|/\|o_\mathrm{ref}\|$")
    ax.set_title(f"check.csv: {len(check)} cases ({mode})", fontsize=10)
    ax.legend(fontsize=8)

    macros.add("CheckCases", len(check))
    macros.add("CheckPassed", int(check["passed"].sum()))
    macros.add("CheckFailed", int((~check["passed"]).sum()))
    macros.add("CheckMaxRelErr", tp.fmt_err(check["rel_err"].max()))
    macros.add("CheckOps", len(summary))

tp.save_figure(fig, out_dir, "correctness")
macros.write(out_dir / "macros_correctness.tex")
print((out_dir / "macros_correctness.tex").read_text())
