"""``tkprefix env``: the provenance of a run as JSON.

GPU name, driver, CUDA runtime (torch's), nvcc, torch, TK commit, this project's git commit, clocks and power state
(read with nvidia-smi, never changed). Fields that cannot be read say why (``"unavailable: ..."``) instead of
being left out.

The project commit comes from ``git rev-parse HEAD`` when the checkout has a ``.git``; a copy without one (the GPU
machine receives the working tree only) takes it from ``TKPREFIX_GIT_COMMIT`` / ``TKPREFIX_GIT_DIRTY``, which the
launching script sets from the checkout it sent.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["collect", "main", "TK_PINNED_COMMIT"]

# ThunderKittens commit the project is pinned to (ARCHITECTURE.md, Dockerfile; tkprefix.build.TK_COMMIT).
try:
    from .build import TK_COMMIT as TK_PINNED_COMMIT
except Exception:  # noqa: BLE001 - provenance must work even where the build module cannot be imported
    TK_PINNED_COMMIT = "0b55588d2769dde0c7a9a606ffc015b0ca7a9551"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 20.0) -> str:
    """stdout of ``cmd`` stripped, or ``unavailable: <why>``."""
    if shutil.which(cmd[0]) is None:
        return f"unavailable: {cmd[0]} not on PATH"
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except Exception as e:  # noqa: BLE001
        return f"unavailable: {type(e).__name__}: {e}"
    if r.returncode != 0:
        return f"unavailable: {' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[:200]}"
    return r.stdout.strip()


def _git() -> dict[str, Any]:
    """The launcher's TKPREFIX_GIT_COMMIT wins (the GPU machine gets a working tree whose .git, if any, is not the
    checkout's); else ``git rev-parse HEAD`` of this checkout."""
    env = os.environ.get("TKPREFIX_GIT_COMMIT")
    if env:
        d = os.environ.get("TKPREFIX_GIT_DIRTY")
        return {"commit": env, "dirty": None if d is None else d in ("1", "true", "yes"),
                "source": "TKPREFIX_GIT_COMMIT (set by the launcher from the checkout it sent)"}
    if (REPO_ROOT / ".git").exists():
        commit = _run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT)
        if not commit.startswith("unavailable"):
            status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT)
            dirty = None if status.startswith("unavailable") else bool(status)
            return {"commit": commit, "dirty": dirty, "source": "git rev-parse HEAD"}
        return {"commit": commit, "dirty": None, "source": "git rev-parse HEAD"}
    return {"commit": "unavailable: no .git and TKPREFIX_GIT_COMMIT unset", "dirty": None, "source": None}


def _tk() -> dict[str, Any]:
    root = os.environ.get("THUNDERKITTENS_ROOT") or str(REPO_ROOT / "third_party" / "ThunderKittens")
    info: dict[str, Any] = {"root": root, "exists": Path(root, "include").is_dir()}
    if Path(root, ".git").exists():
        info["commit"] = _run(["git", "rev-parse", "HEAD"], cwd=Path(root))
        info["source"] = "git rev-parse HEAD in THUNDERKITTENS_ROOT"
    else:
        info["commit"] = TK_PINNED_COMMIT
        info["source"] = "project pin (THUNDERKITTENS_ROOT is an extracted tree without .git)"
    return info


def _nvcc() -> str:
    out = _run(["nvcc", "--version"])
    if out.startswith("unavailable"):
        cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
        cand = Path(cuda_home, "bin", "nvcc")
        if cand.exists():
            out = _run([str(cand), "--version"])
    lines = [ln for ln in out.splitlines() if "release" in ln]
    return lines[0].strip() if lines else out


def _gpu() -> dict[str, Any]:
    q = ("name,driver_version,memory.total,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.draw,"
         "power.limit,temperature.gpu,persistence_mode,compute_mode,pstate")
    out = _run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"])
    info: dict[str, Any] = {}
    if out.startswith("unavailable"):
        info["nvidia_smi"] = out
    else:
        keys = q.split(",")
        info["nvidia_smi"] = [dict(zip(keys, (v.strip() for v in line.split(",")))) for line in out.splitlines()]
    try:
        import torch

        info["torch_cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(name=p.name, capability=f"{p.major}.{p.minor}", sm_count=p.multi_processor_count,
                        memory_bytes=p.total_memory, l2_bytes=getattr(p, "L2_cache_size", None))
    except Exception as e:  # noqa: BLE001
        info["torch_error"] = f"{type(e).__name__}: {e}"
    return info


def collect() -> dict[str, Any]:
    """Everything a result row must be traceable to."""
    try:
        import torch

        torch_info = {"version": torch.__version__, "cuda_runtime": torch.version.cuda,
                      "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    except Exception as e:  # noqa: BLE001
        torch_info = {"version": f"unavailable: {type(e).__name__}: {e}"}
    peers: dict[str, str] = {}
    for mod in ("flashinfer", "flash_attn", "chunk_attn", "hydragen", "triton"):
        try:
            m = __import__(mod)
            peers[mod] = str(getattr(m, "__version__", "installed"))
        except Exception as e:  # noqa: BLE001
            peers[mod] = f"unavailable: {type(e).__name__}"
    if peers["chunk_attn"].startswith("unavailable"):
        # Upstream ChunkAttention is built from a carried copy by `tkprefix build-peers`, after this runs
        try:
            from .bench.peers import chunk_attn_version

            if commit := chunk_attn_version():
                peers["chunk_attn"] = f"source {commit} carried (built by build-peers after this; rows' notes name it)"
        except Exception:  # noqa: BLE001
            pass
    try:
        from .bench.peers_tree import versions

        peers.update(versions())
    except Exception as e:  # noqa: BLE001
        peers["fasttree_artifact"] = f"unavailable: {type(e).__name__}"
    return {
        "collected_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "gpu": _gpu(),
        "torch": torch_info,
        "nvcc": _nvcc(),
        "thunderkittens": _tk(),
        "project": _git(),
        "peers": peers,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix env", description="Print (or write) the provenance of this machine "
                                 "as JSON: GPU, driver, CUDA runtime, nvcc, torch, TK commit, project commit, clocks.")
    ap.add_argument("-o", "--output", help="write the JSON here instead of stdout")
    args = ap.parse_args(argv)
    text = json.dumps(collect(), indent=2, sort_keys=True)
    if args.output:
        from .bench.schema import writable_dir, write_text

        writable_dir(Path(args.output).parent)
        write_text(args.output, text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
