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

from .schema import EXIT_OUTPUT, OutputError, output_error, write_text

__all__ = ["supervise", "Progress", "read_jsonl", "append_jsonl"]


class Progress:
    """The child's side: ``step(**fields)`` appends one JSON line and flushes it."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None

    def step(self, **fields: Any) -> None:
        if self.path is None:
            return
        fields["t"] = time.time()
        append_jsonl(self.path, [fields])


def append_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Append rows as JSON lines; a full disk or unwritable folder raises OutputError naming `path` (a cut last
    line is skipped by read_jsonl)."""
    try:
        with open(path, "a") as f:
            for r in rows:
                f.write(json.dumps(r, default=str) + "\n")
            f.flush()
    except OSError as e:
        raise output_error(path, e) from None


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
    """Run ``cmd``; returns (exit code, last progress record), exit code None if it was killed as hung. A child that
    exits with EXIT_OUTPUT (it could not write its results) raises OutputError here."""
    progress_path = Path(progress_path)
    write_text(progress_path, "")
    proc = subprocess.Popen(cmd)
    last_size, last_change = 0, time.time()

    def size_now() -> int:
        return progress_path.stat().st_size if progress_path.exists() else 0

    while True:
        rc = proc.poll()
        if rc == EXIT_OUTPUT:  # the child could not write its rows or progress: a full disk is not a peer's fault
            raise OutputError(f"cannot write {progress_path.parent}: the child process stopped with exit code "
                              f"{rc} (its message above names the file)")
        if rc is not None:
            recs = read_jsonl(progress_path)
            return rc, (recs[-1] if recs else None)
        size = size_now()
        now = time.time()
        if size != last_size:
            last_size, last_change = size, now
        elif now - last_change > hang_s:
            if size_now() != size:
                continue  # a step landed since the size was read: not hung (checked again at once)
            recs = read_jsonl(progress_path)
            last = recs[-1] if recs else None
            log(f"[supervise] no progress for {hang_s:.0f} s (last: {last}); killing pid {proc.pid}")
            proc.kill()
            proc.wait()
            return None, last
        time.sleep(poll_s)
