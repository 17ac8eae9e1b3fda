"""The artifact pipeline on a CPU machine: notebook helpers, the notebooks on synthetic CSVs (made here, in tmp_path,
never committed), and the Snakemake DAG (lint, live dry-run).

The notebook and Snakemake tests need the `pipeline` extra (snakemake, papermill, jupytext, ipykernel); they are
skipped, with the reason, where it is not installed.
"""
from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))
import tkpaper as tp  # noqa: E402

COMMON = ["config", "impl", "status", "batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype", "graph",
          "median_us", "p20_us", "p80_us", "n", "rel_err", "unique_bytes", "flops", "roofline_us", "pct_roofline"]


# ------------------------------------------------------------------------------------------------ tkpaper helpers
def test_macro_names_are_letters_only():
    assert tp.macro_name("perf", "c1_system_prompt") == "PerfCOneSystemPrompt"
    assert tp.macro_name("b32") == "BThreeTwo"
    with pytest.raises(ValueError):
        tp.macro_name("__")


def test_macros_reject_bad_and_duplicate_names(tmp_path):
    m = tp.Macros("test")
    m.add("Speedup", "1.5")
    with pytest.raises(ValueError, match="twice"):
        m.add("Speedup", "2")
    with pytest.raises(ValueError, match="letters"):
        m.add("Speed2", "2")
    m.add("Impl", "tk_hydragen")
    m.write(tmp_path / "m.tex")
    text = (tmp_path / "m.tex").read_text()
    assert "\\newcommand{\\Speedup}{1.5}" in text and "\\newcommand{\\Impl}{tk\\_hydragen}" in text


def test_tex_escape_and_raw():
    assert tp.tex_escape("a_b%c&d#e$") == r"a\_b\%c\&d\#e\$"
    assert tp.tex_escape(tp.Raw(r"\textbf{x}")) == r"\textbf{x}"
    assert tp.tt("--cores 2") == r"\texttt{-{}-{}cores 2}"


def test_fmt_never_invents_a_number():
    assert tp.fmt(None) == tp.NOT_RECORDED
    assert tp.fmt(float("nan")) == tp.NOT_RECORDED
    assert tp.fmt(36000.4) == "36,000"
    assert tp.fmt(12.345) == "12.3"
    assert tp.fmt_err(0.00441) == "4.4e-03"


def test_geomean_skips_missing():
    assert tp.geomean([1.0, 4.0, float("nan")]) == pytest.approx(2.0)
    assert math.isnan(tp.geomean([]))


def test_flatten_and_find_key():
    flat = tp.flatten({"gpu": {"name": "H100", "nvidia_smi": [{"driver_version": "580.1"}]}, "torch": {"version": "2.5"}})
    assert tp.find_key(flat, "gpu.name") == "H100"
    assert tp.find_key(flat, "driver_version") == "580.1"
    assert tp.find_key(flat, "torch.version") == "2.5"
    assert tp.find_key(flat, "absent") is None


def test_case_columns_include_config_specific_columns():
    import pandas as pd

    df = pd.DataFrame({"config": ["c5"] * 2, "impl": ["a", "b"], "status": ["ok", "ok"], "batch": [32, 32],
                       "prefix": [2048, 2048], "levels": ["2048+1024", "2048+1024"], "chunk_size": [None, None],
                       "median_us": [1.0, 2.0], "run_id": ["x", "x"], "note": ["", ""]})
    cols = tp.case_columns(df)
    assert "levels" in cols and "chunk_size" not in cols and "run_id" not in cols and "median_us" not in cols


# ------------------------------------------------------------------------------------------------ the notebooks
needs_pipeline = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("papermill", "jupytext")),
    reason="pipeline extra not installed (pip install -e '.[pipeline]'): papermill/jupytext missing")


def write_csv(path: Path, cols: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def synthetic_run(d: Path) -> dict:
    """A tiny synthetic run in the results schema (test data only: it never leaves tmp_path)."""
    d.mkdir(parents=True, exist_ok=True)
    rows = []
    times = {"tk_hydragen": 50.0, "sdpa_naive": 400.0, "flashinfer_cascade": 80.0}
    for batch in (16, 33):
        for impl, t in times.items():
            med = t * batch / 16
            rows.append(dict(config="c1", impl=impl, status="ok", batch=batch, q_heads=32, kv_heads=32, head_dim=128,
                             prefix=1000, suffix=77, dtype="bfloat16", graph=0, median_us=med, p20_us=med * 0.9,
                             p80_us=med * 1.1, n=20, rel_err=1e-3, unique_bytes=1e8, flops=1e9,
                             roofline_us=40.0 * batch / 16, pct_roofline=100 * 40.0 / t))
        rows.append(dict(config="c1", impl="hydragen_upstream", status="unavailable: flash-attn not installed",
                         batch=batch, q_heads=32, kv_heads=32, head_dim=128, prefix=1000, suffix=77, dtype="bfloat16",
                         graph=0))
    write_csv(d / "bench_c1.csv", COMMON, rows)
    write_csv(d / "check.csv", ["op", "status", "backend", "shape", "dtype", "rel_err", "tol", "all_written", "note"],
              [dict(op="prefix_attention", status="ok", backend="tk", shape="1x65", dtype="bfloat16", rel_err=2e-3,
                    tol=1e-2, all_written=1),
               dict(op="prefix_attention", status="wrong: too large", backend="tk", shape="3x129", dtype="bfloat16",
                    rel_err=0.5, tol=1e-2, all_written=1)])
    write_csv(d / "e2e.csv", COMMON + ["layers", "new_tokens", "tokens_per_s"],
              [dict(config="c6", impl="tk_hydragen", status="ok", batch=32, graph=0, median_us=1.0, tokens_per_s=900.0),
               dict(config="c6", impl="sdpa_naive", status="ok", batch=32, graph=0, median_us=2.0, tokens_per_s=300.0)])
    return times


def run_notebook(name: str, data: Path, out: Path, tmp: Path) -> None:
    src = tmp / f"{name}.ipynb"
    subprocess.run(["jupytext", "--to", "ipynb", "--output", str(src), str(ROOT / "notebooks" / f"{name}.py")],
                   check=True, capture_output=True)
    r = subprocess.run(["papermill", "--kernel", "python3", "--cwd", str(ROOT / "notebooks"), str(src),
                        str(tmp / f"{name}.out.ipynb"), "-p", "data_dir", str(data), "-p", "out_dir", str(out),
                        "-p", "mode", "test"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_pipeline
def test_notebooks_turn_csv_rows_into_the_paper_numbers(tmp_path):
    data, out = tmp_path / "data", tmp_path / "gen"
    times = synthetic_run(data)
    for nb in ("correctness", "performance", "e2e"):
        run_notebook(nb, data, out, tmp_path)
    perf = (out / "macros_performance.tex").read_text()
    # best ours 50·b/16 vs best peer 80·b/16 in every case: speedup 1.6 exactly, from the rows
    expected = times["flashinfer_cascade"] / times["tk_hydragen"]
    assert f"\\newcommand{{\\PerfSpeedupGeomean}}{{{tp.fmt(expected)}}}" in perf
    assert "\\newcommand{\\PerfNumConfigs}{1}" in perf
    detail = (out / "tables" / "perf_detail.tex").read_text()
    assert tp.fmt(times["sdpa_naive"] * 33 / 16) in detail and "unavailable" in detail
    corr = (out / "macros_correctness.tex").read_text()
    assert "\\newcommand{\\CheckCases}{2}" in corr and "\\newcommand{\\CheckFailed}{1}" in corr
    assert "\\newcommand{\\CheckMaxRelErr}{5.0e-01}" in corr
    e2e = (out / "macros_e2e.tex").read_text()
    assert "\\newcommand{\\EtoeSpeedupMax}{3}" in e2e
    for fig in ("correctness", "perf_latency", "perf_roofline", "e2e"):
        assert (out / "figures" / f"{fig}.pdf").stat().st_size > 0
        assert (out / "figures" / f"{fig}.png").stat().st_size > 0


@needs_pipeline
def test_notebooks_say_not_recorded_without_data(tmp_path):
    data, out = tmp_path / "empty", tmp_path / "gen"
    data.mkdir()
    for nb in ("correctness", "performance", "e2e"):
        run_notebook(nb, data, out, tmp_path)
    for nb in ("correctness", "performance", "e2e"):
        text = (out / f"macros_{nb}.tex").read_text()
        values = [line.split("}{", 1)[1] for line in text.splitlines() if line.startswith("\\newcommand")]
        assert values and all(v.startswith(tp.NOT_RECORDED) for v in values), text
    assert tp.NOT_RECORDED in (out / "tables" / "perf_summary.tex").read_text()


# ------------------------------------------------------------------------------------------------ Snakemake
needs_snakemake = pytest.mark.skipif(shutil.which("snakemake") is None,
                                     reason="pipeline extra not installed: snakemake missing")


def snakemake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@needs_snakemake
@pytest.mark.parametrize("mode", ["replay", "live"])
def test_lint_clean(mode):
    r = snakemake("--lint", "--config", f"mode={mode}")
    assert r.returncode == 0 and "Congratulations" in r.stdout + r.stderr, r.stdout + r.stderr


@needs_snakemake
def test_live_dry_run_lists_the_whole_gpu_dag():
    r = snakemake("-n", "--forceall", "--cores", "8", "--resources", "gpu=1", "--config", "mode=live")
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    sweeps = sorted(p.stem for p in (ROOT / "config" / "sweeps").glob("*.yaml"))
    for rule in ("env", "build", "check", "notebook_performance", "macros", "paper"):
        assert f"rule {rule}:" in text or f"localrule {rule}:" in text, rule
    for s in sweeps:
        assert f"bench_{s}.csv" in text or (s.endswith("e2e") and "results/live/e2e.csv" in text), s


@needs_snakemake
def test_replay_dry_run_needs_no_gpu_rule():
    r = snakemake("-n", "--forceall", "--cores", "2", "--config", "mode=replay")
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    assert "rule replay:" in text or "localrule replay:" in text
    assert "rule bench:" not in text and "rule build:" not in text


@needs_pipeline
def test_performance_with_no_ok_row_says_why(tmp_path):
    """A configuration where ours is wrong and nothing else ran: no crash, no number, the statuses are counted."""
    data, out = tmp_path / "data", tmp_path / "gen"
    data.mkdir()
    base = dict(config="c9", batch=1, q_heads=1, kv_heads=1, head_dim=128, prefix=1, suffix=1, dtype="bfloat16",
                graph=0)
    write_csv(data / "bench_c9.csv", COMMON + ["case_index"],
              [dict(base, impl="tk_hydragen", status="wrong: rel_err 0.5", case_index=0),
               dict(base, impl="sdpa_naive", status="unavailable: no GPU", case_index=0)])
    run_notebook("performance", data, out, tmp_path)
    macros = (out / "macros_performance.tex").read_text()
    assert "\\newcommand{\\PerfSpeedupGeomean}{not recorded}" in macros
    summary = (out / "tables" / "perf_summary.tex").read_text()
    assert "1 wrong, 1 unavailable" in summary or "1 unavailable, 1 wrong" in summary


@needs_pipeline
def test_peers_notebook_speedups_statuses_and_not_recorded(tmp_path):
    """Per peer: geomean / min / max of peer median over the best tkprefix median per case; a peer that only has
    unavailable rows shows its status, one absent from the data is not recorded."""
    data, out = tmp_path / "data", tmp_path / "gen"
    data.mkdir()
    rows = []
    for i, (batch, t_peer) in enumerate(((16, 30.0), (32, 120.0))):
        base = dict(config="c8", batch=batch, q_heads=32, kv_heads=32, head_dim=128, prefix=100, suffix=10,
                    dtype="float16", case_index=i, p20_us="", p80_us="")
        for impl, g, t in (("tk_chunk_attn", 0, 70.0), ("tk_chunk_attn", 1, 60.0), ("tk_hydragen", 0, 80.0),
                           ("fasttree", 0, t_peer), ("fasttree", 1, t_peer * 2)):
            rows.append(dict(base, impl=impl, graph=g, status="ok", median_us=t, p20_us=t, p80_us=t, levels="tree:t1",
                             sharing_ideal=8.0, sharing=8.0 if impl == "tk_hydragen" else 5.5))
        rows.append(dict(base, impl="deft", graph=0, status="unavailable: DeFT is fp16 only"))
    write_csv(data / "bench_c8.csv", COMMON + ["case_index", "levels", "sharing_ideal", "sharing"], rows)
    run_notebook("peers", data, out, tmp_path)
    macros = (out / "macros_peers.tex").read_text()
    assert "\\newcommand{\\PeersFasttreeGeomean}{" + tp.fmt(math.sqrt(0.5 * 2.0)) + "}" in macros
    assert "\\newcommand{\\PeersFasttreeMin}{0.5}" in macros and "\\newcommand{\\PeersFasttreeMax}{2}" in macros
    min_case = next(line for line in macros.splitlines() if "PeersFasttreeMinCase" in line)
    assert min_case.startswith("\\newcommand{\\PeersFasttreeMinCase}{c8 ") and "B16" in min_case
    assert "\\newcommand{\\PeersDeftGeomean}{not recorded}" in macros
    table = (out / "tables" / "peers.tex").read_text()
    assert "\\texttt{deft} & unavailable" in table and "\\texttt{sglang\\_triton} & not recorded" in table
    assert (out / "figures" / "peers_speedup.pdf").is_file()
    sharing = (out / "tables" / "peers_sharing.tex").read_text()
    assert "t1 & float16 & 8 & 5.5" in sharing
