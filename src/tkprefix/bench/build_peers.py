"""`tkprefix build-peers`: build the peers that compile from carried third-party code, ahead of the benchmark (a
build inside a benchmark child would look like a hang to its supervisor):

* upstream ChunkAttention (``scripts/peers/build_chunk_attn_upstream.sh``, from ``third_party/chunk-attention``);
* the TK chunk-first kernel of jacksontromero/chunk-attention-tk (``tkprefix.bench.prior_tk``);
* FlashInfer's JIT modules and the Triton tree peers' kernels (``tkprefix.bench.fi_prewarm``: minutes on first use).

All three run at once. A peer that is not carried or does not build is reported here and becomes rows saying why; the
command itself always exits 0 so the pipeline goes on.

`tkprefix build-peers --check-sources` only checks that the carried sources are all here (exit 2 if not):
scripts/bench/device_run.sh stops a recording on it rather than record a peer's rows as "not carried".
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from . import peers_tree, prior_tk

_REPO = Path(__file__).resolve().parents[3]


def chunk_attn_source() -> Path:
    """Upstream ChunkAttention's carried CMake project (scripts/peers/build_chunk_attn_upstream.sh builds it)."""
    return _REPO / "third_party" / "chunk-attention" / "CMakeLists.txt"


def missing_sources() -> list[str]:
    """The carried third-party sources (scripts/bench/README.md, step 1) that are not here, named with their path."""
    sources = {"upstream ChunkAttention": chunk_attn_source(),
               "FastTree artifact": peers_tree.artifact_kernel(),
               "prior TK chunk-first kernel": prior_tk.kernel_source()}
    return [f"{name}: {path}" for name, path in sources.items() if not path.is_file()]


def main(argv: list[str] | None = None) -> int:
    if "--check-sources" in (argv or []):
        missing = missing_sources()
        for line in missing:
            print(f"build-peers: not carried: {line}", file=sys.stderr)
        return 2 if missing else 0
    t0 = time.perf_counter()
    lock = threading.Lock()

    def say(part: str, line: str) -> None:  # as it happens, with the time: a stopped run's log shows where it was
        with lock:
            print(f"[{time.perf_counter() - t0:5.0f} s] {part}: {line.rstrip()}", flush=True)

    def start(part: str, cmd: list[str]) -> tuple[subprocess.Popen, threading.Thread]:
        proc = subprocess.Popen(cmd, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def relay() -> None:
            for line in proc.stdout:
                say(part, line)

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        return proc, reader

    script = _REPO / "scripts" / "peers" / "build_chunk_attn_upstream.sh"
    ca = None
    if chunk_attn_source().is_file():
        ca = start("upstream ChunkAttention", ["bash", str(script)])
    else:
        say("upstream ChunkAttention", "not carried (third_party/chunk-attention); its rows will say so")
    # FlashInfer JIT + Triton compiles (GPU-light, CPU-heavy): in its own process, beside the two builds
    warm = start("fi_prewarm", [sys.executable, "-m", "tkprefix.bench.fi_prewarm"])
    try:
        mod = prior_tk.build(verbose="--verbose" in (argv or []))
        say("prior_tk_chunk_first", f"built {mod.__file__}")
    except Exception as e:  # noqa: BLE001 - its rows carry the reason
        say("prior_tk_chunk_first", f"not built: {type(e).__name__}: {e}")
    for part, job in (("upstream ChunkAttention", ca), ("fi_prewarm", warm)):
        if job is not None:
            proc, reader = job
            proc.wait()
            reader.join()
            say(part, f"rc={proc.returncode}")
    say("build-peers", "done")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
