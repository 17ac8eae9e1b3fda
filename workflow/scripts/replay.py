"""Replay: copy the recorded run (config recorded_dir, e.g. data/h100) into results/replay with a manifest.

The manifest records where every file came from and its sha256, so each number in the paper traces back to a
committed file. An empty or absent recorded_dir gives a manifest with no files ("not recorded"), not an error:
the notebooks then say "not recorded" for everything.
"""
import datetime
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "notebooks"))  # Snakemake sets __file__ to this file
import tkpaper as tp  # noqa: E402


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit(path: str) -> str:
    try:
        out = subprocess.run(["git", "-C", path, "log", "-1", "--format=%H", "--", "."], capture_output=True,
                             text=True, check=True, timeout=30)
        return out.stdout.strip() or "untracked"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"


def main(sources: list[str], src_dir: str, manifest: str) -> None:
    dst = Path(manifest).parent
    dst.mkdir(parents=True, exist_ok=True)
    names = {Path(s).name for s in sources}
    for stale in list(dst.glob("*.csv")) + [p for p in dst.glob("*.json") if p.name != Path(manifest).name]:
        if stale.name not in names:
            print(f"removing stale {stale} (not in {src_dir})")
            stale.unlink()
    files = []
    for s in sorted(sources):
        s = Path(s)
        tp.replace_into(dst / s.name, lambda tmp: shutil.copyfile(s, tmp))
        files.append({"name": s.name, "source": str(s), "bytes": s.stat().st_size, "sha256": sha256(s)})
        print(f"copied {s} -> {dst / s.name}")
    record = {
        "mode": "replay",
        "source_dir": src_dir,
        "source_git_commit": git_commit(src_dir) if Path(src_dir).exists() else "absent",
        "copied_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "recorded": bool(files),
        "note": "" if files else f"{src_dir} holds no recorded run: every result in the paper reads 'not recorded'",
        "files": files,
    }
    tp.write_text(manifest, json.dumps(record, indent=2) + "\n")
    print(f"wrote {manifest} ({len(files)} files)")


if "snakemake" in globals():
    with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by Snakemake's script directive)
        sys.stdout = sys.stderr = log
        main(list(snakemake.input), snakemake.params.src, snakemake.output.manifest)  # noqa: F821
