"""`tkprefix record` refuses unfinished runs and never overwrites silently."""
import json

from tkprefix.bench import record


def _run(d, finished=True):
    d.mkdir(parents=True, exist_ok=True)
    meta = {"run_id": "x"}
    if finished:
        meta["finished_utc"] = "y"
    (d / "provenance.json").write_text(json.dumps(meta))
    (d / "bench_c1.csv").write_text("config,impl\n")
    (d / "run.log").write_text("log\n")


def test_record_copies_and_refuses_overwrite(tmp_path):
    src, dst = tmp_path / "results", tmp_path / "data"
    _run(src)
    assert record.main(["--from", str(src), "--to", str(dst)]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["bench_c1.csv", "provenance.json"]
    assert record.main(["--from", str(src), "--to", str(dst)]) == 1  # exists: refused
    assert record.main(["--from", str(src), "--to", str(dst), "--force", "--with-logs"]) == 0
    assert (dst / "run.log").exists()


def test_record_refuses_unfinished_or_empty(tmp_path):
    src = tmp_path / "r"
    _run(src, finished=False)
    assert record.main(["--from", str(src), "--to", str(tmp_path / "d")]) == 1
    assert record.main(["--from", str(tmp_path / "none"), "--to", str(tmp_path / "d")]) == 1
