"""paper/generated/macros.tex (provenance + every notebook's macros) and tables/repro.tex (claim -> command -> time).

Live: times come from Snakemake's benchmark files of this run (benchmarks/**.tsv). Replay: no time of this build
reaches the PDF (it depends on the recorded data only, byte for byte); a GPU stage that did not run says so.
"""
import re
import sys
from pathlib import Path

import pandas as pd

_lib = snakemake.params.lib if "snakemake" in globals() else Path(__file__).resolve().parents[2] / "notebooks"  # noqa: F821
sys.path.insert(0, str(_lib))
import tkpaper as tp  # noqa: E402


# Replay: the PDF is a function of the recorded data only (two builds give the same bytes), so it shows no time
# measured by this build; those are in results/benchmarks/ (Snakemake's benchmark files).
REPLAY_TIME = "differs per build (see note)"
TIME_NOTE = {
    "live": "Times are this run's, from Snakemake's benchmark files.",
    "replay": "This PDF depends only on the recorded data: two replay builds from the same data are byte-identical "
              "(CI checks their sha256), so it shows no time measured by the build itself, which differs from run "
              "to run; those are in Snakemake's benchmark files (results/benchmarks/). The GPU stages did not run "
              "here: the recorded run's own wall time is the row that names it.",
}


def stage_time(bench_dir: Path, rel: str, mode: str) -> str:
    """Wall time of one rule of this run, from its benchmark TSV (live); in replay, where to find it."""
    if rel.startswith("live/") and mode == "replay":
        return "GPU stage: not run in replay mode"
    if mode == "replay":
        return REPLAY_TIME
    path = bench_dir / rel
    if path.is_file():
        df = pd.read_csv(path, sep="\t")
        if len(df) and "s" in df.columns:
            return f"{float(df['s'].iloc[0]):.1f} s (this run)"
    return tp.NOT_RECORDED


def provenance_macros(macros: tp.Macros, data_dir: Path, mode: str) -> dict:
    """Provenance of the results (GPU, driver, CUDA, nvcc, torch, TK and project commits, ceilings) as macros."""
    prov = tp.flatten(tp.read_json(data_dir / "provenance.json"))
    if tp.find_key(prov, "copy_bw_bytes_per_s") is None:  # live: the ceilings are in each bench job's provenance
        for job in sorted(data_dir.glob("jobs/*/provenance.json")):
            prov = {**tp.flatten(tp.read_json(job)), **prov}
            break
    manifest = tp.read_json(data_dir / "manifest.json")
    fields = {
        "ProvGPU": ("gpu.name", "gpu_name", "name"),
        "ProvDriver": ("driver_version", "driver"),
        "ProvCudaRuntime": ("cuda_runtime", "torch.cuda", "cuda_version"),
        "ProvNvcc": ("nvcc", "nvcc_version"),
        "ProvTorch": ("torch.version", "torch_version", "torch"),
        "ProvTKCommit": ("thunderkittens.commit", "tk_commit"),
        "ProvGitCommit": ("project.commit", "git_commit"),
        "ProvDate": ("started_utc", "collected_utc", "timestamp"),
    }
    for name, keys in fields.items():
        value = tp.find_key(prov, *keys)
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        if name.endswith("Commit") and isinstance(value, str) and re.fullmatch(r"[0-9a-f]{13,40}", value):
            value = value[:12]
        if name == "ProvGitCommit" and tp.find_key(prov, "project.dirty") is True:
            value = f"{value} (with uncommitted changes)"
        if isinstance(value, str) and value.startswith("unavailable"):
            value = f"{tp.NOT_RECORDED} ({value[:60]}...)" if len(value) > 60 else f"{tp.NOT_RECORDED} ({value})"
        macros.add(name, value if value is not None else tp.NOT_RECORDED)
    copy_bw, gemm = tp.find_key(prov, "copy_bw_bytes_per_s"), tp.find_key(prov, "gemm_flops_per_s")
    macros.add("ProvCopyTBs", tp.fmt(float(copy_bw) / 1e12) if copy_bw is not None else tp.NOT_RECORDED)
    macros.add("ProvGemmTflops", tp.fmt(float(gemm) / 1e12) if gemm is not None else tp.NOT_RECORDED)
    wall = tp.find_key(prov, "wall_s")
    macros.add("ProvBenchWallS", tp.fmt(float(wall)) if wall is not None else tp.NOT_RECORDED)
    macros.add("PipelineMode", mode)
    macros.add("ReproTimeNote", TIME_NOTE[mode])
    if mode == "replay":
        n = len(manifest.get("files", []))
        source = manifest.get("source_dir", "data/h100")
        macros.add("DataSource", f"the recorded run in {source} ({n} files, sha256 in results/replay/manifest.json)"
                   if n else f"{tp.NOT_RECORDED} ({source} holds no recorded run yet)")
    else:
        macros.add("DataSource", f"this live run ({data_dir})")
    return prov


def repro_table(bench_dir: Path, data_dir: Path, sweeps: dict, mode: str, prov: dict) -> str:
    """Claim -> figure/table -> command -> time, one row per pipeline stage that makes a claim."""
    e2e = sorted(s for s, kind in dict(sweeps).items() if kind == "e2e")
    attention = sorted((set(dict(sweeps)) - set(e2e)) | set(tp.bench_files(data_dir)))
    live = "snakemake --cores 8 --resources gpu=1 --config mode=live"
    rows = [
        ["TK kernels match the float64 reference", "Tab. correctness, Fig. correctness",
         tp.tt(f"{live} -- results/live/check.csv"), stage_time(bench_dir, "live/check.tsv", mode)],
        ["TK extension builds (sm_90a)", "-", tp.tt(f"{live} -- results/live/build.done"),
         stage_time(bench_dir, "live/build.tsv", mode)],
    ]
    for s in attention:
        rows.append([f"Performance vs peers: {s}", "Fig. latency, Tab. summary/detail",
                     tp.tt(f"{live} -- results/live/bench_{s}.csv"), stage_time(bench_dir, f"live/bench_{s}.tsv", mode)])
    if e2e:
        rows.append([f"End-to-end decode ({', '.join(e2e)})", "Fig./Tab. end-to-end",
                     tp.tt(f"{live} -- results/live/e2e.csv"), stage_time(bench_dir, "live/bench_e2e.tsv", mode)])
    wall = tp.find_key(prov, "wall_s")
    if mode == "replay" and wall is not None:
        rows.append(["The recorded H100 run: every sweep above, one process", "all",
                     tp.tt(f"tkprefix bench --out results/h100 (then tkprefix record)"),
                     f"{float(wall):.0f} s (recorded run's wall_s)"])
    for nb, what in (("correctness", "Tab./Fig. correctness"), ("performance", "Figs. latency, roofline; Tabs."),
                     ("peers", "Tab./Fig. every peer"), ("e2e", "Fig./Tab. end-to-end")):
        rows.append([f"Figures and tables from the data ({nb})", what,
                     tp.tt(f"snakemake --cores 2 --config mode={mode} -- results/notebooks/{nb}.ipynb"),
                     stage_time(bench_dir, f"notebooks/{nb}.tsv", mode)])
    rows.append(["Recorded run copied with checksums", "all", tp.tt("snakemake --cores 2 --config mode=replay -- "
                 "results/replay/manifest.json"), stage_time(bench_dir, "replay/replay.tsv", mode)])
    return tp.tabular(["claim", "figure / table", "command", "time"], rows, align=">{\\raggedright}p{3.4cm}>{\\raggedright}p{2.8cm}>{\\raggedright}p{6.4cm}"
                                                                 ">{\\raggedright\\arraybackslash}p{2.6cm}")


def main(parts, data_dir, mode, bench_dir, sweeps, out_macros, out_repro):
    data_dir, bench_dir = Path(data_dir), Path(bench_dir)
    macros = tp.Macros("workflow/scripts/macros.py")
    prov = provenance_macros(macros, data_dir, mode)
    text = "".join(Path(p).read_text() for p in parts)
    tp.write_text(out_macros, macros.text() + text)
    tp.write_text(out_repro, repro_table(bench_dir, data_dir, sweeps, mode, prov))
    print(Path(out_macros).read_text())


if "snakemake" in globals():
    with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by Snakemake's script directive)
        sys.stdout = sys.stderr = log
        main(snakemake.input.parts, snakemake.params.data, snakemake.params.mode,  # noqa: F821
             snakemake.params.benchmarks, snakemake.params.sweeps,  # noqa: F821
             snakemake.output.macros, snakemake.output.repro)  # noqa: F821
