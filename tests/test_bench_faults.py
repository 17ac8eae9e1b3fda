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
        attempts.append((start, dict(skip), arg.get("--isolate-cases", "")))
        finish, (rc, last) = script[len(attempts) - 1]
        with open(rows_path, "a") as f:
            for i in range(start, start + finish):
                for impl in sweep.impls:
                    reason = skip.get(f"{i}|{impl}") or skip.get(f"*|{impl}")
                    r = sweep.cases[i].base_row()
                    t = None if reason else 1.0   # a complete row, as the real child writes (schema.write_csv)
                    r.update(impl=impl, graph=0, status=reason or "ok", median_us=t, p20_us=t, p80_us=t, n=t and 10,
                             rel_err=t and 1e-3, roofline_us=1.0, pct_roofline=t and 100.0, case_index=i, run_id="t")
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
    schema.write_csv(tmp_path / "bench.csv", rows, cli_bench.ATTN_COLUMNS)   # every row meets the CSV schema


def _run(s, script, tmp_path, monkeypatch):
    supervise, attempts = fake_children(s, script)
    monkeypatch.setattr(cli_bench, "supervise", supervise)
    cli_bench._HANGS.clear()
    args = argparse.Namespace(sweeps=str(cli_bench.DEFAULT_SWEEPS), seed=0, every=1, impls=None, reps=None, hang_s=40.0)
    rows = cli_bench._run_sweep_supervised(s, args, tmp_path, tmp_path / ".ceilings.json", "t", 0.0)
    schema.write_csv(tmp_path / "bench.csv", rows, cli_bench.ATTN_COLUMNS)   # every row meets the CSV schema
    return {(int(r["case_index"]), r["impl"]): r["status"] for r in rows}, attempts


def test_a_hang_in_interleaved_timing_times_the_case_again_one_implementation_at_a_time(tmp_path, monkeypatch):
    """Session 16 (H200): c7's interleaved timing hung with no implementation named; the sweep then lost the case
    and its CSV failed the schema. Now the case is timed again one implementation at a time: a second hang names
    the implementation (its row says hang), the others keep their timings."""
    s = small_sweep()
    group = "interleaved timing of peer_a, peer_b"
    script = [
        (1, (None, {"case": 1, "impl": None, "stage": group})),                            # case 1: the group hangs
        (0, (None, {"case": 1, "impl": "peer_b", "stage": "interleaved timing of peer_b"})),  # alone: peer_b hangs
        (3, (0, {"case": 3, "impl": None, "stage": "done"})),
    ]
    status, attempts = _run(s, script, tmp_path, monkeypatch)
    assert [(a[0], a[2]) for a in attempts] == [(0, ""), (1, "1"), (1, "1")]  # case 1 again, isolated
    assert status[(1, "peer_b")] == ("wrong: hang: no progress for 40 s during interleaved timing of peer_b "
                                     "(process killed)")
    assert {k for k, st in status.items() if st != "ok"} == {(1, "peer_b")} and len(status) == 4 * len(IMPLS)


def test_a_hang_that_names_no_implementation_twice_marks_the_case_and_goes_on(tmp_path, monkeypatch):
    """If the isolated timing hangs before any implementation is named, or a hang comes outside timing (inputs),
    every row of that case says so, with complete (empty) timing columns, and the sweep goes on."""
    s = small_sweep()
    script = [
        (0, (None, {"case": 0, "impl": None, "stage": "inputs"})),
        (1, (None, {"case": 2, "impl": None, "stage": "interleaved timing of peer_a, peer_b"})),
        (0, (None, {"case": 2, "impl": None, "stage": "inputs"})),
        (1, (0, {"case": 3, "impl": None, "stage": "done"})),
    ]
    status, attempts = _run(s, script, tmp_path, monkeypatch)
    assert [(a[0], a[2]) for a in attempts] == [(0, ""), (1, ""), (2, "2"), (3, "2")]
    hung = {k for k, st in status.items() if st.startswith("wrong: hang")}
    assert hung == {(0, "peer_a"), (0, "peer_b"), (2, "peer_a"), (2, "peer_b")}
