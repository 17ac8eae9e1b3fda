"""The supervisor turns a hung child into a record of where it hung, and lets a finished child through."""
import sys
import textwrap

from tkprefix.bench.supervise import Progress, append_jsonl, read_jsonl, supervise


def _child(tmp_path, body):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(tmp_path)!r})
        from tkprefix.bench.supervise import Progress
        p = Progress(sys.argv[1])
        {body}
    """))
    return [sys.executable, str(script)]


def test_hung_child_is_killed_with_its_last_step(tmp_path):
    prog = tmp_path / "p.jsonl"
    cmd = _child(tmp_path, "p.step(case=3, impl='tk_x', stage='run'); time.sleep(60)") + [str(prog)]
    rc, last = supervise(cmd, prog, hang_s=1.0, poll_s=0.1, log=lambda m: None)
    assert rc is None and last["case"] == 3 and last["impl"] == "tk_x"


def test_finished_child_returns_its_code(tmp_path):
    prog = tmp_path / "p.jsonl"
    cmd = _child(tmp_path, "p.step(case=0, impl=None, stage='done'); sys.exit(4)") + [str(prog)]
    rc, last = supervise(cmd, prog, hang_s=5.0, poll_s=0.1, log=lambda m: None)
    assert rc == 4 and last["stage"] == "done"


def test_jsonl_round_trip_skips_a_cut_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"a": 1}, {"b": None}])
    with open(path, "a") as f:
        f.write('{"cut": ')
    assert read_jsonl(path) == [{"a": 1}, {"b": None}]
    Progress(None).step(x=1)  # no path: a no-op
