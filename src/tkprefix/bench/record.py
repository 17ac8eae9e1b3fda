"""``tkprefix record``: copy a finished live run (results/<machine>/) into data/h100/, the recorded default for replay.

Refuses to overwrite recorded files unless ``--force``, and refuses a run that is not finished (no provenance.json
with ``finished_utc``) or holds no result CSV. Only the result files are copied: ``bench_*.csv``, ``e2e.csv``,
``check.csv``, ``provenance.json`` (and ``*.log`` when ``--with-logs``).

Example: ``tkprefix record --from results/h100 --to data/h100``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

PATTERNS = ("bench_*.csv", "e2e.csv", "check.csv", "provenance.json")


def files_to_record(src: Path, with_logs: bool = False) -> list[Path]:
    files: list[Path] = []
    for pat in PATTERNS + (("*.log",) if with_logs else ()):
        files += sorted(p for p in src.glob(pat) if p.is_file())
    return files


def record(src: Path, dst: Path, force: bool = False, with_logs: bool = False) -> list[Path]:
    """Copy the run in ``src`` to ``dst``; returns the written paths. Raises ValueError / FileExistsError."""
    prov = src / "provenance.json"
    if not prov.is_file():
        raise ValueError(f"--from: {src} holds no provenance.json: not a finished run of `tkprefix bench`")
    meta = json.loads(prov.read_text())
    if "finished_utc" not in meta:
        raise ValueError(f"--from: {prov} has no finished_utc: the run did not finish")
    files = files_to_record(src, with_logs)
    if not any(p.suffix == ".csv" for p in files):
        raise ValueError(f"--from: {src} holds no result CSV")
    clash = [dst / p.name for p in files if (dst / p.name).exists()]
    if clash and not force:
        raise FileExistsError(
            f"--to: {len(clash)} recorded file(s) already exist ({', '.join(c.name for c in clash[:4])}...); "
            "pass --force to replace the recorded run")
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for p in files:
        shutil.copy2(p, dst / p.name)
        out.append(dst / p.name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix record", description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", default="results/h100", help="finished run directory")
    ap.add_argument("--to", dest="dst", default="data/h100", help="recorded results directory")
    ap.add_argument("--force", action="store_true", help="replace existing recorded files")
    ap.add_argument("--with-logs", action="store_true", help="also copy *.log files")
    args = ap.parse_args(argv)
    try:
        written = record(Path(args.src), Path(args.dst), force=args.force, with_logs=args.with_logs)
    except (ValueError, FileExistsError) as e:
        print(f"tkprefix record: {e}", file=sys.stderr)
        return 1
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
