"""scripts/bench/device_run.sh with TKPREFIX_RESUME_FROM: a recording stopped at its deadline, its results/ packed by
tar (which keeps the files' times), goes on in a fresh checkout (newer sources, no .snakemake metadata) with only the
jobs it had left. Stubs stand in for what needs the GPU machine (`tkprefix build` / `build-peers`, pip, nvidia-smi);
Snakemake's dry run (`-n`, passed through) shows the plan. Session 34 lost a resume by touching the unpacked files: a
job's benchmark file counts as its output, so touched outputs rerun everything after `env`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from test_resume import ROOT, copy_checkout

pytestmark = pytest.mark.skipif(shutil.which("snakemake") is None, reason="pipeline extra not installed: snakemake")

DONE = [  # (output under results/live, job name of its log and benchmark files): a run stopped in c3, in order
    ("provenance.json", "env"), ("build.done", "build"), ("check.csv", "check"), ("build_peers.done", "build_peers"),
    ("bench_c8_trees.csv", "bench_c8_trees"), ("bench_c1_system_prompt.csv", "bench_c1_system_prompt"),
]
STUBS = {
    "tkprefix": 'echo "stub tkprefix $*"',
    "nvidia-smi": 'echo "Stub GPU"',
    # pip is stubbed (an editable install would point this interpreter at the copy); the rest is the real python3
    "python3": f'if [ "$1" = -m ] && [ "$2" = pip ]; then exit 0; fi\nexec {sys.executable} "$@"',
}


def stopped_run(folder: Path, gpu: str = "Stub GPU") -> Path:
    """results/ of a run stopped in c3 on `gpu` (every done job's output, log and benchmark, at increasing times),
    packed."""
    t0 = time.time() - 3600
    for i, (out, job) in enumerate(DONE):
        for path in (folder / "results/live" / out, folder / f"results/logs/live/{job}.log",
                     folder / f"results/benchmarks/live/{job}.tsv"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"gpu": {"name": gpu}}) if out == "provenance.json" else f"{job}\n")
            os.utime(path, (t0 + 10 * i, t0 + 10 * i))
    tgz = folder / "results.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder / "results", arcname="results")
    return tgz


def planned_jobs(log: str) -> dict[str, int]:
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def resume(tmp_path: Path, tgz: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """device_run.sh's dry run with TKPREFIX_RESUME_FROM=tgz in a fresh copy of the checkout, behind the stubs."""
    fresh = copy_checkout(tmp_path / "fresh")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in STUBS.items():
        (stubs / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (stubs / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "TKPREFIX_RESUME_FROM": str(tgz),
           "TKPREFIX_GIT_COMMIT": "0" * 40, "TKPREFIX_GIT_DIRTY": "0"}
    env.pop("OUT", None)
    r = subprocess.run(["bash", "scripts/bench/device_run.sh", "--omit-from", "paper", "-n"], cwd=fresh, env=env,
                       capture_output=True, text=True, timeout=300)
    return r, fresh


def test_a_stopped_recording_resumes_on_a_fresh_checkout(tmp_path):
    r, fresh = resume(tmp_path, stopped_run(tmp_path / "first"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = planned_jobs(r.stdout + r.stderr)
    sweeps = len(list((ROOT / "config/sweeps").glob("c*.yaml"))) - 1   # c6 (e2e) is bench_e2e's
    assert jobs.get("bench") == sweeps - 2, jobs                        # c8 and c1 were done
    assert jobs.get("bench_e2e") == 1, jobs
    assert not {"env", "build", "check", "build_peers"} & set(jobs), jobs
    assert "resumed from" in (fresh / "results/logs/live/resume.log").read_text()


def test_a_run_begun_on_another_gpu_is_not_resumed(tmp_path):
    r, fresh = resume(tmp_path, stopped_run(tmp_path / "first", gpu="NVIDIA H100 80GB HBM3"))
    assert r.returncode == 2
    assert "was recorded on NVIDIA H100 80GB HBM3, this machine has Stub GPU; record anew" in r.stderr
    assert not (fresh / "results/logs/live/resume.log").exists()
