"""A results folder the harness cannot write (full disk, no permission, a file in the way) is one clear line naming
the path and exit code 74, never a traceback, and never a half-written CSV under its final name. A build killed
mid-way leaves nothing that blocks the next one."""
from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tkprefix import cli
from tkprefix.bench import check, schema, supervise

ROW = {"op": "decode_attention", "backend": "torch", "shape": "B1", "dtype": "float32", "case_index": 0,
       "status": "ok", "rel_err": 0.0, "tol": 1e-5, "all_written": True, "note": ""}


def run_check(out: Path, capsys) -> tuple[int, str]:
    rc = cli.main(["check", "--backend", "torch", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


@pytest.fixture
def fast_suite(monkeypatch):
    """The suite reduced to one row: these tests are about where the rows go, not the rows."""
    monkeypatch.setattr(check, "run_check", lambda *a, **k: [dict(ROW)])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555 (see the file-in-the-way test)")
def test_unwritable_results_dir_names_the_path(tmp_path, capsys, fast_suite):
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        rc, err = run_check(results / "live", capsys)
    finally:
        results.chmod(0o755)
    assert rc == schema.EXIT_OUTPUT
    assert f"tkprefix check: cannot write {results / 'live'}: Permission denied" in err


def test_a_file_where_results_should_be_names_the_path(tmp_path, capsys, fast_suite):
    (tmp_path / "results").write_text("not a folder")
    rc, err = run_check(tmp_path / "results" / "live", capsys)
    assert rc == schema.EXIT_OUTPUT
    assert f"cannot write {tmp_path / 'results' / 'live'}: Not a directory" in err


def test_full_disk_names_the_csv_and_leaves_no_partial_file(tmp_path, capsys, fast_suite, monkeypatch):
    class FullDisk(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_on_full_disk(path, *args, **kwargs):
        Path(path).touch()  # the file is created, as on a real disk, and then no byte fits
        return FullDisk()

    monkeypatch.setattr(schema, "open", open_on_full_disk, raising=False)
    out = tmp_path / "live"
    rc, err = run_check(out, capsys)
    assert rc == schema.EXIT_OUTPUT
    assert err.strip() == f"tkprefix check: cannot write {out / 'check.csv'}: No space left on device (free some space)"
    assert list(out.iterdir()) == []  # neither check.csv nor its temporary file


def test_full_disk_while_appending_rows_is_an_output_error(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(supervise, "open", full, raising=False)
    with pytest.raises(schema.OutputError, match=r"cannot write .*rows.jsonl: No space left on device"):
        supervise.append_jsonl(tmp_path / "rows.jsonl", [{"a": 1}])


def test_child_that_cannot_write_stops_the_sweep_with_the_path(tmp_path):
    """A bench/check child exits with EXIT_OUTPUT when it cannot write its rows: the supervisor stops the sweep with
    an OutputError instead of recording a peer failure and retrying."""
    cmd = [sys.executable, "-c", f"import sys; sys.exit({schema.EXIT_OUTPUT})"]
    with pytest.raises(schema.OutputError, match=f"cannot write {tmp_path}"):
        supervise.supervise(cmd, tmp_path / "progress.jsonl", hang_s=60.0, poll_s=0.05, log=lambda m: None)


def test_cli_exit_code_and_message_from_a_subprocess(tmp_path):
    """The same through the installed entry point's module, in a fresh process (what Snakemake runs)."""
    (tmp_path / "results").write_text("")
    out = tmp_path / "results" / "live"
    r = subprocess.run([sys.executable, "-m", "tkprefix.cli", "env", "--output", str(out / "provenance.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == schema.EXIT_OUTPUT, r.stderr
    assert r.stderr.strip() == f"tkprefix env: cannot write {out}: Not a directory"


def test_a_build_killed_mid_way_does_not_block_the_next(tmp_path):
    """torch's build lock file, left by a process killed while building the extension, is removed by the next build
    (which holds the flock, so no other build is running); without this the rerun would wait on it forever."""
    from tkprefix import build

    (tmp_path / "lock").write_text("")
    with build._exclusive_build(tmp_path):
        assert not (tmp_path / "lock").exists()
