# Helper functions of the pipeline (no rules here: `snakemake --lint` wants them apart).
import os
import shutil
import sys
import subprocess
from pathlib import Path


def release_stale_locks():
    """Lets the pipeline resume after a hard kill (SIGKILL, OOM killer, power loss) with the plain command.

    Snakemake's lock files (.snakemake/locks/) outlive such a kill, and the next run then stops with LockException
    ("--unlock"). Every main `snakemake` process of this workflow holds an OS lock (flock) on
    .snakemake/tkprefix.run for as long as it lives; the kernel drops it when the process dies, however it dies. If
    this process can take it, no other run of the workflow is alive here, so Snakemake's lock files are stale and
    go. If it can't, another run is alive: its locks stay and Snakemake refuses to run beside it, as usual.
    Returns the open file (keep it referenced: closing it drops the lock)."""
    import fcntl

    if not workflow.is_main_process:  # a job spawned by the main process (cluster executors) owns no lock
        return None
    meta = Path(".snakemake")
    meta.mkdir(exist_ok=True)
    run_lock = open(meta / "tkprefix.run", "w")
    try:
        fcntl.flock(run_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        run_lock.close()
        return None
    stale = sorted((meta / "locks").glob("*.lock"))
    for p in stale:
        p.unlink()
    if stale:
        print(f"tkprefix pipeline: removed {len(stale)} stale Snakemake lock(s) of a killed run "
              f"(no other run of this workflow is alive)", file=sys.stderr)
    return run_lock


def live_capable():
    """(ok, reason): an sm_90 GPU is visible and ThunderKittens is found at $THUNDERKITTENS_ROOT."""
    tk_root = os.environ.get("THUNDERKITTENS_ROOT", "")
    if not tk_root or not Path(tk_root, "include", "kittens.cuh").is_file():
        return False, f"THUNDERKITTENS_ROOT={tk_root!r} has no include/kittens.cuh"
    if shutil.which("nvidia-smi") is None:
        return False, "nvidia-smi not found (no NVIDIA driver)"
    query = ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"nvidia-smi failed: {exc}"
    gpus = [line.split(",") for line in out.strip().splitlines() if line.strip()]
    if not any(len(g) == 2 and g[1].strip() == "9.0" for g in gpus):
        return False, f"no sm_90 GPU among {[g[0].strip() for g in gpus]}"
    return True, f"sm_90 GPU {gpus[0][0].strip()} and TK at {tk_root}"


def resolve_mode(requested):
    """config mode (auto | live | replay) -> live | replay; auto decides by live_capable()."""
    if requested not in ("auto", "live", "replay"):
        raise ValueError(f"config 'mode' must be auto, live or replay, got {requested!r}")
    if requested != "auto":
        return requested
    ok, reason = live_capable()
    mode = "live" if ok else "replay"
    print(f"tkprefix pipeline: mode=auto -> {mode} ({reason})", file=sys.stderr)
    return mode


def list_sweeps(sweeps_dir, selected):
    """{name: kind} of the sweep configurations (sweeps_dir/*.yaml, or the selected subset); kind is the file's
    `kind:` (attention | e2e), attention when absent."""
    import yaml

    found = {}
    for p in sorted(Path(sweeps_dir).glob("*.yaml")):
        with open(p) as f:
            spec = yaml.safe_load(f) or {}
        found[p.stem] = spec.get("kind", "attention") if isinstance(spec, dict) else "attention"
    if not selected:
        return found
    missing = [s for s in selected if s not in found]
    if missing:
        raise ValueError(f"config 'sweeps' names {missing}, not found in {sweeps_dir}/ (have {sorted(found)})")
    return {s: found[s] for s in selected}


def recorded_runs():
    """The recorded runs that exist (config recorded_dirs, in that order: a folder with a provenance.json)."""
    dirs = config["recorded_dirs"]
    if isinstance(dirs, str) or not dirs:
        raise ValueError(f"config 'recorded_dirs' must be a non-empty list of folders, got {dirs!r}")
    return [str(d) for d in dirs if Path(d, "provenance.json").is_file()]


def primary_run():
    """The primary recorded run: the first of recorded_dirs that exists (else the first entry: 'not recorded')."""
    found = recorded_runs()
    return found[0] if found else str(config["recorded_dirs"][0])


def rerun_dir():
    """The second run on the primary's GPU (config rerun_dir, default <primary>/rerun), or None when absent."""
    d = config.get("rerun_dir") or f"{primary_run()}/rerun"
    return d if Path(d, "provenance.json").is_file() else None


def result_paths(root):
    """The result files of a recorded run: CSV and JSON at its top level, sorted."""
    return sorted(p for p in Path(root).glob("*") if p.is_file() and p.suffix in (".csv", ".json"))


def run_files(root):
    """A recorded run's result files as ancient() inputs: replay never re-runs because of their timestamps, only
    when they change (content_digest)."""
    return [ancient(str(p)) for p in result_paths(root)]


def content_digest(*roots):
    """sha256 over the contents of these runs' result files: a rule's `params`, so that a recorded run whose files
    change (a new recording, a git pull) reruns what reads it, which the ancient() inputs alone would not."""
    import hashlib

    h = hashlib.sha256()
    for p in (p for root in roots for p in result_paths(root)):
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def recorded_files(wildcards):
    """Every file of the primary recorded run."""
    return run_files(primary_run())


def crossgpu_inputs(wildcards):
    """What the cross-GPU notebook reads: this run's data, every recorded run and the rerun comparison."""
    files = data_inputs(wildcards)
    for d in recorded_runs():
        files += run_files(d)
    if rerun_dir():
        files.append("results/compare/rerun.json")
    return files


def data_inputs(wildcards):
    """What the notebooks read: the live run's files, or the replay manifest."""
    if MODE == "live":
        return ([f"{DATA}/provenance.json", f"{DATA}/check.csv"] + [f"{DATA}/bench_{s}.csv" for s in ATTENTION_SWEEPS]
                + ([f"{DATA}/e2e.csv"] if E2E_SWEEPS else []))
    return [f"{DATA}/manifest.json"]


def sweep_file(wildcards):
    """The YAML definition of one sweep configuration."""
    return str(Path(config["sweeps_dir"], f"{wildcards.sweep}.yaml"))


def nb_params():
    """Parameters of every notebook rule: absolute paths, since papermill runs the kernel in notebooks/."""
    return {"data": os.path.abspath(DATA), "gen": os.path.abspath(GEN), "mode": MODE,
            "cwd": os.path.abspath("notebooks")}


def crossgpu_params():
    """Extra notebook parameters of the cross-GPU notebook: the recorded runs and the rerun comparison."""
    return {"runs": ",".join(os.path.abspath(d) for d in recorded_runs()),
            "rerun": os.path.abspath("results/compare/rerun.json") if rerun_dir() else "",
            "runs_digest": content_digest(*recorded_runs())}
