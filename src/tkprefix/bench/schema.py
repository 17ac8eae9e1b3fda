"""CSV schema of the results files (docs/design.md, "Results files").

Every benchmark CSV starts with :data:`COMMON_COLUMNS` in that order; configuration-specific columns follow.
``status`` is ``ok``, ``unavailable: <reason>``, ``wrong: <error>`` or ``oom``; a row that is not ``ok`` leaves the
timing columns empty (never zero, never a guess).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, TextIO

COMMON_COLUMNS: tuple[str, ...] = (
    "config", "impl", "status", "batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype", "graph",
    "median_us", "p20_us", "p80_us", "n", "rel_err", "unique_bytes", "flops", "roofline_us", "pct_roofline",
)

# The timing columns of a row that is not ``ok`` (every path that writes such a row uses this one).
NO_TIMING: dict[str, None] = dict.fromkeys(("median_us", "p20_us", "p80_us", "n", "rel_err", "pct_roofline"))

# Columns every attention benchmark CSV of this harness adds after the common ones.
# tflops / gbps: achieved FLOP rate and unique-bytes bandwidth of an ok row (flops / median, unique_bytes / median).
EXTRA_COLUMNS: tuple[str, ...] = ("levels", "chunk_size", "tflops", "gbps", "note")

E2E_COLUMNS: tuple[str, ...] = (
    "config", "impl", "status", "batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype", "graph",
    "median_us", "p20_us", "p80_us", "n", "rel_err", "unique_bytes", "flops", "roofline_us", "pct_roofline",
    "layers", "hidden", "new_tokens", "tokens_per_s", "median_step_us", "note",
)

CHECK_COLUMNS: tuple[str, ...] = (
    "op", "status", "backend", "shape", "dtype", "rel_err", "tol", "all_written", "note",
)

_STATUS_RE = re.compile(r"^(ok|oom|unavailable: .+|wrong: .+)$", re.S)


def valid_status(status: str) -> bool:
    """True for ``ok``, ``oom``, ``unavailable: <reason>`` and ``wrong: <error>``."""
    return bool(_STATUS_RE.match(status))


def unavailable(reason: str) -> str:
    return "unavailable: " + _one_line(reason)


def wrong(error: str) -> str:
    return "wrong: " + _one_line(error)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split()) or "(no message)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def columns_for(rows: Sequence[Mapping[str, object]], base: Sequence[str]) -> list[str]:
    """``base`` followed by any further keys the rows carry, in first-seen order."""
    cols = list(base)
    for row in rows:
        for key in row:
            if key not in cols:
                cols.append(key)
    return cols


def validate_row(row: Mapping[str, object], required: Sequence[str] = COMMON_COLUMNS) -> None:
    """Raise ``ValueError`` naming the column if a row breaks the schema."""
    missing = [c for c in required if c not in row]
    if missing:
        raise ValueError(f"row: missing columns {missing}")
    status = str(row["status"])
    if not valid_status(status):
        raise ValueError(f"status: expected ok | oom | unavailable: <reason> | wrong: <error>, got {status!r}")
    timing = ("median_us", "p20_us", "p80_us")
    if status == "ok":
        for c in timing:
            if c in row and (row[c] is None or row[c] == ""):
                raise ValueError(f"{c}: an ok row needs a timing")
        if "p20_us" in row and "median_us" in row and "p80_us" in row:
            if not (float(row["p20_us"]) <= float(row["median_us"]) <= float(row["p80_us"])):
                raise ValueError("p20_us <= median_us <= p80_us violated")
    else:
        for c in timing:
            if c in row and row[c] not in (None, ""):
                raise ValueError(f"{c}: a row with status {status!r} must not carry a timing")


def _fmt(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, bool):
        return int(v)
    return v


# ----------------------------------------------------------------------------------------------- writing results
EXIT_OUTPUT = 74  # sysexits EX_IOERR: a results file could not be written (full disk, unwritable folder)


class OutputError(RuntimeError):
    """A results file or folder cannot be written; the message names the path and the system's reason."""


def output_error(path: str | os.PathLike, e: OSError) -> OutputError:
    why = e.strerror or str(e)
    hint = " (free some space)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return OutputError(f"cannot write {os.fspath(path)}: {why}{hint}")


def writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and prove a file can be created in it, before any work whose results would go there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_probe_{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise output_error(path, e) from None
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[TextIO], None]) -> None:
    """write(f) into a temp file beside `path`, then rename it onto `path`: a full disk or a kill never leaves a
    half-written file under the final name; any OSError becomes an OutputError naming `path`."""
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise output_error(path, e) from None


def write_text(path: str | os.PathLike, text: str) -> None:
    write_atomic(path, lambda f: f.write(text))


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, object]], base: Sequence[str]) -> None:
    """Write ``rows`` with columns ``base`` (+ extras), validating each row first; atomic (temp file + rename)."""
    rows = list(rows)
    for i, row in enumerate(rows):
        try:
            validate_row(row, required=[c for c in COMMON_COLUMNS if c in base])
        except ValueError as e:
            raise ValueError(f"rows[{i}] ({row.get('impl')}): {e}") from None
    cols = columns_for(rows, base)

    def write(f: TextIO) -> None:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="raise")
        w.writeheader()
        for row in rows:
            w.writerow({c: _fmt(row.get(c)) for c in cols})

    write_atomic(path, write)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
