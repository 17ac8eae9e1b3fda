"""Faults of a peer mid-sweep (issue 14): a hang, a crash and a poisoned CUDA context each become one row of that
case and implementation with the reason, and the sweep goes on with the next case.

The parent's bookkeeping (`cli_bench._run_sweep_supervised`) is tested here on the CPU with a stand-in for the child
process that follows the child's protocol (rows and progress as JSON lines, the skip file); on the GPU the real
child runs the real peers.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tkprefix.bench import cli_bench, schema
from tkprefix.bench.cases import load_sweeps

IMPLS = ["peer_a", "peer_b"]


def small_sweep():
    s = load_sweeps(cli_bench.DEFAULT_SWEEPS, ["c1_system_prompt"])[0]
    s.cases, s.impls, s.graph = s.cases[:4], list(IMPLS), [False]
    return s


def fake_children(sweep, script):
    """supervise() stand-in: attempt k runs `script[k]` = (cases to finish, how it ends: (rc, last progress))."""
    attempts = []

    def supervise(cmd, prog_path, hang_s, log=print):
        arg = dict(zip(cmd, cmd[1:]))  # --flag value
        start, rows_path = int(arg["--start-case"]), Path(arg["--rows"])
        skip = json.loads(Path(arg["--skip-json"]).read_text())
        attempts.append((start, dict(skip)))
        finish, (rc, last) = script[len(attempts) - 1]
        with open(rows_path, "a") as f:
            for i in range(start, start + finish):
                for impl in sweep.impls:
                    reason = skip.get(f"{i}|{impl}") or skip.get(f"*|{impl}")
                    r = sweep.cases[i].base_row()
                    r.update(impl=impl, graph=0, status=reason or "ok", case_index=i, run_id="t")
                    f.write(json.dumps(r) + "\n")
        return rc, last

    return supervise, attempts


def test_hang_crash_and_poisoned_context_each_become_one_row_and_the_sweep_goes_on(tmp_path, monkeypatch):
    s = small_sweep()
    script = [
        (1, (None, {"case": 1, "impl": "peer_b", "stage": "interleaved timing"})),        # case 1: peer_b hangs
        (1, (4, {"case": 2, "impl": "peer_a", "stage": "fatal CUDA error",                 # case 2: poisons context
                 "error": "AcceleratorError: CUDA error: an illegal memory access was encountered"})),
        (0, (-11, {"case": 2, "impl": "peer_b", "stage": "prepare + correctness run"})),  # case 2: peer_b segfaults
        (2, (0, {"case": 3, "impl": None, "stage": "done"})),
    ]
    supervise, attempts = fake_children(s, script)
    monkeypatch.setattr(cli_bench, "supervise", supervise)
    cli_bench._HANGS.clear()
    args = argparse.Namespace(sweeps=str(cli_bench.DEFAULT_SWEEPS), seed=0, every=1, impls=None, reps=None, hang_s=40.0)
    rows = cli_bench._run_sweep_supervised(s, args, tmp_path, tmp_path / ".ceilings.json", "t", 0.0)

    status = {(int(r["case_index"]), r["impl"]): r["status"] for r in rows}
    assert len(rows) == len(status) == 4 * len(IMPLS)  # one row per case and implementation, none lost or doubled
    assert status[(1, "peer_b")] == "wrong: hang: no progress for 40 s during interleaved timing (process killed)"
    assert status[(2, "peer_a")] == schema.wrong("AcceleratorError: CUDA error: an illegal memory access was "
                                                 "encountered")
    assert status[(2, "peer_b")] == "wrong: process died (exit code -11) during prepare + correctness run"
    ok = {key for key, st in status.items() if st == "ok"}
    assert ok == {(0, "peer_a"), (0, "peer_b"), (1, "peer_a"), (3, "peer_a"), (3, "peer_b")}
    assert [a[0] for a in attempts] == [0, 1, 2, 2]  # each restart resumes at the faulty case, the sweep goes on
    assert list(tmp_path.glob(".progress_*")) == [] and list(tmp_path.glob(".skip_*")) == []
