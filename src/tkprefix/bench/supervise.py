"""Run GPU work in a child process and survive a kernel that hangs or poisons its CUDA context.

A hung kernel cannot be interrupted from inside its process, and after an illegal-address error every later CUDA call
of that process fails. So `tkprefix bench` and `tkprefix check` run their cases in a child process that reports
progress (one JSON line per step: which case, which implementation, which stage) and appends every finished row to a
JSON-lines file. The supervisor watches the progress file; if it does not grow for ``hang_s`` seconds it kills the
child, turns the step in flight into a ``wrong: hang ...`` row and starts a fresh child after it. Rows already
finished are never lost; no case is silently dropped.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["supervise", "Progress", "read_jsonl", "append_jsonl"]


class Progress:
    """The child's side: ``step(**fields)`` appends one JSON line and flushes it."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None

    def step(self, **fields: Any) -> None:
        if self.path is None:
            return
        fields["t"] = time.time()
        with open(self.path, "a") as f:
            f.write(json.dumps(fields, default=str) + "\n")
            f.flush()


def append_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")
        f.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by the kill
                pass
    return out


def supervise(cmd: list[str], progress_path: str | Path, hang_s: float, *, poll_s: float = 0.5,
              log: Callable[[str], None] = print) -> tuple[int | None, dict[str, Any] | None]:
    """Run ``cmd``; returns (exit code, last progress record), exit code None if it was killed as hung."""
    progress_path = Path(progress_path)
    progress_path.write_text("")
    proc = subprocess.Popen(cmd)
    last_size, last_change = 0, time.time()
    while True:
        rc = proc.poll()
        if rc is not None:
            recs = read_jsonl(progress_path)
            return rc, (recs[-1] if recs else None)
        size = progress_path.stat().st_size if progress_path.exists() else 0
        now = time.time()
        if size != last_size:
            last_size, last_change = size, now
        elif now - last_change > hang_s:
            recs = read_jsonl(progress_path)
            last = recs[-1] if recs else None
            log(f"[supervise] no progress for {hang_s:.0f} s (last: {last}); killing pid {proc.pid}")
            proc.kill()
            proc.wait()
            return None, last
        time.sleep(poll_s)
