"""``tkprefix record``: copy a finished live run into ``data/<gpu>/``, where replay finds it.

The GPU comes from the run's provenance.json (``"NVIDIA H200"`` -> ``data/h200``, ``"NVIDIA H100 80GB HBM3"`` ->
``data/h100``) unless ``--to`` names the folder (e.g. ``data/h200/rerun`` for a second run on the same GPU).
Refuses to overwrite recorded files unless ``--force``, and refuses a run that is not finished or holds no result
CSV. Two layouts are finished runs:

- the live pipeline's ``results/live/`` (``snakemake ... --config mode=live``): ``provenance.json`` from
  ``tkprefix env`` and one ``jobs/<sweep>/provenance.json`` per bench job, each with ``finished_utc``; the recorded
  provenance.json is the first with the jobs' timings, ceilings and sweeps added;
- one ``tkprefix bench --out DIR`` process: ``DIR/provenance.json`` with ``finished_utc``.

Only result files are copied: ``bench_*.csv``, ``e2e.csv``, ``check.csv``, ``provenance.json``. ``--with-logs`` also
copies the run's logs: ``*.log`` in the run folder, and the live pipeline's, which Snakemake writes beside it
(``results/logs/live/*.log`` for ``results/live``), into ``<dst>/logs/``.

Example: ``tkprefix record`` (= ``--from results/live --to data/<gpu of the run>``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

PATTERNS = ("bench_*.csv", "e2e.csv", "check.csv")
JOB_KEYS = ("run_id", "started_utc", "finished_utc", "wall_s", "deadline_s", "hang_s", "command", "run_notes",
            "ceilings")


def gpu_slug(name: str) -> str:
    """The folder name of a GPU: its model token, lower case ("NVIDIA H100 80GB HBM3" -> "h100")."""
    m = re.search(r"\b([A-Za-z]{1,3}\d{2,4}[A-Za-z]?)\b", str(name).replace("NVIDIA", " "))
    if not m:
        raise ValueError(f"GPU name {name!r} has no model token like H100: pass --to data/<gpu>")
    return m.group(1).lower()


def gpu_of(meta: dict) -> str | None:
    """The GPU name in a provenance dict (torch's name, else nvidia-smi's first GPU)."""
    gpu = meta.get("gpu") if isinstance(meta.get("gpu"), dict) else {}
    smi = gpu.get("nvidia_smi")
    return gpu.get("name") or (smi[0].get("name") if isinstance(smi, list) and smi else None)


def run_provenance(src: Path) -> dict:
    """The provenance of a finished run in ``src`` (either layout), or ValueError saying why it is not one."""
    prov = src / "provenance.json"
    if not prov.is_file():
        raise ValueError(f"--from: {src} holds no provenance.json: not a run of the live pipeline or tkprefix bench")
    meta = json.loads(prov.read_text())
    jobs = {p.parent.name: json.loads(p.read_text()) for p in sorted(src.glob("jobs/*/provenance.json"))}
    if "finished_utc" in meta:
        return meta
    if not jobs:
        raise ValueError(f"--from: {prov} has no finished_utc and {src}/jobs/ holds no bench job: the run did not finish")
    unfinished = [name for name, j in jobs.items() if "finished_utc" not in j]
    if unfinished:
        raise ValueError(f"--from: bench job(s) {unfinished} in {src}/jobs/ did not finish")
    meta = dict(meta)
    meta["jobs"] = {name: {k: j[k] for k in JOB_KEYS if k in j} for name, j in jobs.items()}
    meta["sweeps"] = {k: v for j in jobs.values() for k, v in j.get("sweeps", {}).items()}
    meta["ceilings"] = next(iter(jobs.values())).get("ceilings", {})
    meta["started_utc"] = min(j.get("started_utc", j["finished_utc"]) for j in jobs.values())
    meta["finished_utc"] = max(j["finished_utc"] for j in jobs.values())
    meta["wall_s"] = sum(float(j.get("wall_s", 0.0)) for j in jobs.values())
    meta["run_notes"] = "; ".join(sorted({j["run_notes"] for j in jobs.values() if j.get("run_notes")}))
    meta["recorded_from"] = (f"live pipeline run in {src}: ceilings of job {next(iter(jobs))}, wall_s = sum of "
                             f"the {len(jobs)} bench jobs")
    return meta


def files_to_record(src: Path, with_logs: bool = False) -> list[Path]:
    files: list[Path] = []
    for pat in PATTERNS + (("*.log",) if with_logs else ()):
        files += sorted(p for p in src.glob(pat) if p.is_file())
    return files


def pipeline_logs(src: Path) -> list[Path]:
    """The live pipeline's logs of the run in ``src``: Snakemake's rules write them to ``results/logs/<mode>/``,
    beside ``results/<mode>/``."""
    return sorted(p for p in (src.parent / "logs" / src.name).glob("*.log") if p.is_file())


def default_dst(meta: dict, data_root: Path = Path("data")) -> Path:
    gpu = gpu_of(meta)
    if not gpu:
        raise ValueError("--to: the run's provenance.json names no GPU; pass --to data/<gpu>")
    return data_root / gpu_slug(gpu)


def record(src: Path, dst: Path | None = None, force: bool = False, with_logs: bool = False) -> list[Path]:
    """Copy the run in ``src`` to ``dst`` (default data/<gpu>); returns the written paths.
    Raises ValueError / FileExistsError."""
    meta = run_provenance(src)
    dst = dst if dst is not None else default_dst(meta)
    files = files_to_record(src, with_logs)
    if not any(p.suffix == ".csv" for p in files):
        raise ValueError(f"--from: {src} holds no result CSV")
    logs = pipeline_logs(src) if with_logs else []
    targets = [dst / p.name for p in files + [src / "provenance.json"]] + [dst / "logs" / p.name for p in logs]
    clash = [t for t in targets if t.exists()]
    if clash and not force:
        raise FileExistsError(
            f"--to: {len(clash)} recorded file(s) already exist in {dst} ({', '.join(c.name for c in clash[:4])}...);"
            " pass --force to replace the recorded run, or --to another folder (e.g. a rerun: --to <gpu dir>/rerun)")
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for p in files:
        shutil.copy2(p, dst / p.name)
        out.append(dst / p.name)
    if logs:
        (dst / "logs").mkdir(exist_ok=True)
    for p in logs:
        shutil.copy2(p, dst / "logs" / p.name)
        out.append(dst / "logs" / p.name)
    (dst / "provenance.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    out.append(dst / "provenance.json")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix record", description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", default="results/live", help="finished run directory (default results/live)")
    ap.add_argument("--to", dest="dst", default=None,
                    help="recorded results directory (default data/<gpu>, the GPU named by the run's provenance)")
    ap.add_argument("--force", action="store_true", help="replace existing recorded files")
    ap.add_argument("--with-logs", action="store_true",
                    help="also copy the run's *.log files (and the live pipeline's results/logs/<mode>/ into <dst>/logs/)")
    args = ap.parse_args(argv)
    try:
        written = record(Path(args.src), Path(args.dst) if args.dst else None, force=args.force,
                         with_logs=args.with_logs)
    except (ValueError, FileExistsError) as e:
        print(f"tkprefix record: {e}", file=sys.stderr)
        return 1
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
