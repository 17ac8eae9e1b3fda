"""Helpers shared by the tkprefix notebooks: read the results CSVs, write LaTeX macros/tables, save figures.

Every number that reaches the paper goes through this module, from a CSV row of the run (live) or of the recorded
run (replay). Anything missing becomes the text "not recorded", never a made-up value.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pandas as pd

NOT_RECORDED = "not recorded"

# Columns of design.md's schema that describe a benchmark case (the same for every implementation of that case).
CASE_COLUMNS = ["batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype"]
# Columns that are measurements or labels of one implementation's row, not part of the case.
MEASURE_COLUMNS = {
    "config", "impl", "status", "graph", "median_us", "p20_us", "p80_us", "n", "rel_err", "unique_bytes", "flops",
    "roofline_us", "pct_roofline", "error", "reason", "note", "tflops", "tb_s", "gb_s", "bandwidth_gbs",
    "tokens_per_s", "speedup", "timestamp", "git_commit", "gpu", "run_id", "median_step_us", "gbps",
    # tree cases (configuration 8): per-implementation sharing, and tree descriptors the `levels` column names already
    "kv_tokens_read", "sharing", "tree", "n_nodes", "depth", "unique_tokens", "path_tokens", "sharing_ideal",
}
_DIGITS = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]


# ----------------------------------------------------------------------------------------------------------- reading
def read_csv(path: Path) -> pd.DataFrame | None:
    """A results CSV as a DataFrame, or None when the file is absent or has no rows."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    df = pd.read_csv(path)
    return df if len(df) else None


def bench_files(data_dir: Path) -> dict[str, Path]:
    """{config name: path} of every bench_<config>.csv in data_dir, except end-to-end decode (its own notebook)."""
    out = {}
    for p in sorted(Path(data_dir).glob("bench_*.csv")):
        name = p.stem[len("bench_"):]
        if not is_e2e_name(name):
            out[name] = p
    return out


def is_e2e_name(name: str) -> bool:
    return "e2e" in name.lower() or "end_to_end" in name.lower()


def e2e_file(data_dir: Path) -> Path | None:
    """e2e.csv (design.md), else a bench_*e2e*.csv written by the sweep runner, else None."""
    data_dir = Path(data_dir)
    if (data_dir / "e2e.csv").is_file():
        return data_dir / "e2e.csv"
    cands = sorted(p for p in data_dir.glob("bench_*.csv") if is_e2e_name(p.stem))
    return cands[0] if cands else None


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path) as f:
        return json.load(f)


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}, "c": [{"d": 2}]} -> {"a.b": 1, "c.0.d": 2}; lists of scalars are kept as values."""
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
            out.update(flatten({str(i): x for i, x in enumerate(v)}, key + "."))
        else:
            out[key] = v
    return out


def find_key(flat: dict[str, object], *candidates: str) -> object | None:
    """The first value whose dotted key ends with one of the candidate names (case-insensitive), else None."""
    low = {k.lower(): v for k, v in flat.items()}
    for cand in candidates:
        cand = cand.lower()
        for k, v in low.items():
            if (k == cand or k.endswith("." + cand)) and v not in (None, ""):
                return v
    return None


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status is ok and that carry a finite median."""
    status = df["status"].astype(str).str.strip() if "status" in df else pd.Series("ok", index=df.index)
    med = pd.to_numeric(df.get("median_us"), errors="coerce") if "median_us" in df else pd.Series(math.nan, index=df.index)
    return df[(status == "ok") & med.notna()].copy()


def is_ours(impl: str) -> bool:
    """tkprefix's own kernels are named tk_* (design.md)."""
    return str(impl).startswith("tk_")


def impl_label(row: pd.Series) -> str:
    """impl, with " (graph)" when the row was timed as CUDA-graph replay."""
    graph = row.get("graph", False)
    graph = str(graph).strip().lower() in ("1", "true", "yes", "graph")
    return f"{row['impl']} (graph)" if graph else str(row["impl"])


def case_columns(df: pd.DataFrame) -> list[str]:
    """Columns that identify a case: the schema's shape columns plus config-specific ones (levels, chunk_size, ...).

    Columns entirely empty are left out (pandas cannot group on them usefully)."""
    cols = [c for c in CASE_COLUMNS if c in df.columns]
    # The harness numbers its cases: then a column that varies inside one case_index is a measurement, not a key.
    base = cols + (["case_index"] if "case_index" in df.columns else [])
    for c in df.columns:
        if c in cols or c in MEASURE_COLUMNS or c.endswith(("_us", "_ms", "_s", "_err", "_pct")):
            continue
        if not df[c].notna().any():
            continue
        if "case_index" in df.columns and c != "case_index" and base and \
                df.groupby(base, dropna=False)[c].nunique(dropna=False).max() > 1:
            continue
        cols.append(c)
    return cols


SHAPE_LABEL_COLUMNS = ("batch", "q_heads", "kv_heads", "prefix", "suffix")


def label_columns(df: pd.DataFrame, cols: list[str]) -> tuple[list[str], str]:
    """(the case columns worth printing per case, a note of the ones constant over the whole file).

    Shape columns are always printed; another column is printed only when it tells cases apart that the shape does
    not (e.g. `levels` in a tree sweep, not when it just restates the prefix); one constant over the file goes to
    the note."""
    keep, const = [], []
    shape = [c for c in SHAPE_LABEL_COLUMNS if c in df.columns]
    for c in cols:
        if c in SHAPE_LABEL_COLUMNS:
            keep.append(c)
        elif df[c].nunique(dropna=True) > 1:
            if not shape or df.groupby(shape, dropna=False)[c].nunique(dropna=False).max() > 1:
                keep.append(c)
        elif c not in ("dtype", "head_dim", "case_index", "config") and df[c].notna().any():
            const.append(f"{c}={df[c].dropna().iloc[0]}")
    return keep, ", ".join(const)


def case_label(row: pd.Series, cols: list[str]) -> str:
    """A short human label of a case, e.g. "B32 H32/32 P4096 S512"."""
    short = {"batch": "B", "prefix": "P", "suffix": "S", "head_dim": "d"}
    parts = []
    if "q_heads" in cols and "kv_heads" in cols:
        parts.append(f"H{row['q_heads']}/{row['kv_heads']}")
    for c in cols:
        if c in ("q_heads", "kv_heads", "dtype", "head_dim", "case_index", "config"):
            continue
        parts.append(f"{short.get(c, c + '=')}{row[c]}")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------------------- LaTeX
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


class Raw(str):
    """A table cell or macro value that is already LaTeX (not escaped)."""


def tex_escape(text: object) -> str:
    if isinstance(text, Raw):
        return str(text)
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def macro_name(*parts: object) -> str:
    """LaTeX-safe macro name from parts: letters only, CamelCase, digits spelled ("bench", "b32" -> "BenchBThreeTwo")."""
    words = re.split(r"[^A-Za-z0-9]+", " ".join(str(p) for p in parts))
    name = ""
    for w in words:
        if not w:
            continue
        w = "".join(_DIGITS[int(ch)] if ch.isdigit() else ch for ch in w)
        name += w[0].upper() + w[1:]
    if not name:
        raise ValueError(f"macro_name: no letters in {parts!r}")
    return name


class Macros:
    """Collects \\newcommand lines; each value is escaped unless given as raw LaTeX."""

    def __init__(self, source: str):
        self.source = source
        self.lines: list[str] = []
        self.names: set[str] = set()

    def add(self, name: str, value: object, raw: bool = False) -> None:
        if not re.fullmatch(r"[A-Za-z]+", name):
            raise ValueError(f"macro name must be letters only, got {name!r}")
        if name in self.names:
            raise ValueError(f"macro \\{name} defined twice")
        self.names.add(name)
        text = str(value) if raw else tex_escape(value)
        self.lines.append(f"\\newcommand{{\\{name}}}{{{text}}}")

    def text(self) -> str:
        header = f"% Generated by {self.source}: do not edit (every value comes from the run's CSV/JSON files).\n"
        return header + "\n".join(self.lines) + "\n"

    def write(self, path: Path) -> None:
        write_text(path, self.text())


def fmt(x: object, digits: int = 3) -> str:
    """A number with `digits` significant digits; NaN/None -> NOT_RECORDED."""
    if x is None:
        return NOT_RECORDED
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return NOT_RECORDED
    if v == 0:
        return "0"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    if abs(v) < 1e-3:
        return f"{v:.{max(digits - 1, 0)}e}"
    return f"{v:.{digits}g}"


def fmt_err(x: object) -> str:
    """A relative error in scientific notation, e.g. 3.1e-03."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NOT_RECORDED
    return NOT_RECORDED if math.isnan(v) else f"{v:.1e}"


def tt(text: object) -> Raw:
    """Typewriter text (commands, file names), escaped; -- stays two hyphens."""
    return Raw("\\texttt{" + tex_escape(text).replace("-", "-{}") + "}")


def stacked(name: str) -> Raw:
    """A header cell broken at underscores onto stacked lines (narrow columns for long implementation names)."""
    parts = [tex_escape(p) for p in str(name).split("_")]
    return Raw("\\shortstack[r]{" + "\\_\\\\".join(parts) + "}")


def tabular(header: list[str], rows: list[list[object]], align: str | None = None, caption_note: str = "",
            long: bool = False) -> str:
    """A booktabs tabular (no float around it: the paper places it), cells escaped; long=True: a longtable that
    breaks across pages and repeats its header."""
    align = align or "l" * len(header)
    env = "longtable" if long else "tabular"
    out = [f"\\begin{{{env}}}{{{align}}}", "\\toprule", " & ".join(tex_escape(h) for h in header) + r" \\", "\\midrule"]
    if long:
        out.append("\\endhead")
    for r in rows:
        out.append(" & ".join(tex_escape(c) for c in r) + r" \\")
    out += ["\\bottomrule", f"\\end{{{env}}}"]
    if caption_note:
        out.append(f"\\par\\smallskip{{\\footnotesize {tex_escape(caption_note)}}}")
    return "\n".join(out) + "\n"


def not_recorded_table(what: str) -> str:
    return tabular([what], [[f"{NOT_RECORDED}: no such file in this run's data"]])


def replace_into(path: Path, write) -> None:
    """write(tmp) into a temporary file beside `path`, then rename it onto `path` (atomic on POSIX): a run killed
    at any point leaves either the old complete file or the new complete file, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    replace_into(path, lambda tmp: tmp.write_text(text))


# ----------------------------------------------------------------------------------------------------------- figures
_COLORS = {  # one colour per implementation in every figure; ours warm, peers cool/grey
    "tk_hydragen": "#d62728", "tk_chunk_attn": "#ff7f0e", "tk_chunk_first": "#8c564b", "tk_tree": "#e6ab02",
    "flashinfer_cascade": "#1f77b4", "sdpa_hydragen": "#9467bd", "sdpa_naive": "#7f7f7f",
    "chunk_attn_upstream": "#2ca02c", "hydragen_upstream": "#e377c2",
}
_EXTRA = ["#17becf", "#bcbd22", "#aec7e8", "#98df8a", "#c5b0d5", "#c49c94"]
_N_FIXED = len(_COLORS)


def impl_color(label: str) -> str:
    """The colour of an implementation (its " (graph)" variant shares it)."""
    impl = str(label).replace(" (graph)", "")
    if impl not in _COLORS:
        _COLORS[impl] = _EXTRA[(len(_COLORS) - _N_FIXED) % len(_EXTRA)]
    return _COLORS[impl]


# No creation date in the files (PNG has none): the same data give the same bytes (reproducible replay PDF).
FIGURE_METADATA = {"pdf": {"CreationDate": None}, "png": {}}


def save_figure(fig, out_dir: Path, name: str) -> None:
    """figures/<name>.pdf (for the paper) and .png (for the Snakemake report and the notebook), each atomically."""
    fig_dir = Path(out_dir) / "figures"
    for fmt, extra in (("pdf", {}), ("png", {"dpi": 150})):
        replace_into(fig_dir / f"{name}.{fmt}", lambda tmp: fig.savefig(
            tmp, format=fmt, bbox_inches="tight", metadata=FIGURE_METADATA[fmt], **extra))


def not_recorded_figure(title: str, why: str):
    """A figure that says plainly that the data is missing."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", va="center", fontsize=12, weight="bold")
    ax.text(0.5, 0.3, f"{NOT_RECORDED}: {why}", ha="center", va="center", fontsize=10)
    return fig


def geomean(values) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v)) and float(v) > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else math.nan
