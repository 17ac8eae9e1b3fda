"""The supervisor turns a hung child into a record of where it hung, and lets a finished child through."""
import sys
import textwrap
import time

from tkprefix.bench.supervise import Progress, append_jsonl, read_jsonl, supervise


def _child(tmp_path, body):
    """A child like the harness's: it imports tkprefix (and so torch: 1-2 s when cold) before its first step."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(tmp_path)!r})
        from tkprefix.bench.supervise import Progress
        p = Progress(sys.argv[1])
        hang_s = float(sys.argv[2])
        {body}
    """))
    return [sys.executable, str(script)]


def _supervise_until_hung(tmp_path, body, hang_s=1.0, max_hang_s=32.0):
    """supervise() the child; if it was killed before its hang step (a slow or loaded machine: the imports, or one
    of its sleeps, took longer than hang_s), again with twice the hang_s. A supervisor that kills a child while it
    reports fails at every hang_s. Returns (rc, last, hang_s, seconds from the last step to the supervisor's
    return)."""
    prog = tmp_path / "p.jsonl"
    while True:
        rc, last = supervise(_child(tmp_path, body) + [str(prog), str(hang_s)], prog, hang_s=hang_s, poll_s=0.05,
                             log=lambda m: None)
        returned = time.time()
        if rc is not None or (last or {}).get("impl") == "tk_x" or hang_s >= max_hang_s:
            return rc, last, hang_s, returned - (last or {}).get("t", returned)
        hang_s *= 2


def test_hung_child_is_killed_with_its_last_step(tmp_path):
    """The child makes progress for 1.5 hang_s (a step every hang_s / 4), then hangs in case 3. The supervisor must let
    it run while it reports (the hang clock restarts at every step), kill it after hang_s without a step, not much
    later, and return that last step."""
    body = """
        for i in range(6):
            p.step(case=i, impl="warmup", stage="run")
            time.sleep(hang_s / 4)
        p.step(case=3, impl="tk_x", stage="run")
        time.sleep(max(30.0, 4 * hang_s))  # the hang; a supervisor that never kills sees exit code 0
    """
    rc, last, hang_s, after_last = _supervise_until_hung(tmp_path, body)
    assert rc is None, f"not killed as hung (exit code {rc}, hang_s={hang_s})"
    assert last is not None and (last["case"], last["impl"]) == (3, "tk_x"), f"killed before the hang: {last}"
    assert hang_s <= after_last < 2 * hang_s + 5, f"killed {after_last:.1f} s after the last step, hang_s={hang_s}"


def test_silent_child_is_killed(tmp_path):
    """A child that never reports (stuck before its first step) is hung too: killed after hang_s, no step to show."""
    prog = tmp_path / "p.jsonl"
    t0 = time.time()
    rc, last = supervise([sys.executable, "-c", "import time; time.sleep(30)"], prog, hang_s=1.0, poll_s=0.05,
                         log=lambda m: None)
    assert rc is None and last is None
    assert 1.0 <= time.time() - t0 < 15


def test_finished_child_returns_its_code(tmp_path):
    prog = tmp_path / "p.jsonl"
    cmd = _child(tmp_path, "p.step(case=0, impl=None, stage='done'); sys.exit(4)") + [str(prog), "120"]
    rc, last = supervise(cmd, prog, hang_s=120.0, poll_s=0.1, log=lambda m: None)  # it ends long before hang_s
    assert rc == 4 and last["stage"] == "done"


def test_jsonl_round_trip_skips_a_cut_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"a": 1}, {"b": None}])
    with open(path, "a") as f:
        f.write('{"cut": ')
    assert read_jsonl(path) == [{"a": 1}, {"b": None}]
    Progress(None).step(x=1)  # no path: a no-op
