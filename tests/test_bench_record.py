"""`tkprefix record` takes the GPU from provenance, refuses unfinished runs and never overwrites silently."""
import json

import pytest

from tkprefix.bench import record


def _run(d, finished=True, gpu="NVIDIA H100 80GB HBM3"):
    d.mkdir(parents=True, exist_ok=True)
    meta = {"run_id": "x", "gpu": {"name": gpu}}
    if finished:
        meta["finished_utc"] = "y"
    (d / "provenance.json").write_text(json.dumps(meta))
    (d / "bench_c1.csv").write_text("config,impl\n")
    (d / "run.log").write_text("log\n")


def _pipeline_run(d, gpu="NVIDIA H200", finished=("c1", "e2e")):
    """results/live of the live pipeline: env's provenance (no finished_utc) + one provenance per bench job."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "provenance.json").write_text(json.dumps({"gpu": {"nvidia_smi": [{"name": gpu}]}, "collected_utc": "t"}))
    for name, start, end in (("c1", "20261201T2200Z", "20261201T2201Z"), ("e2e", "20261201T2150Z", "20261201T2159Z")):
        job = {"started_utc": start, "wall_s": 60.0, "ceilings": {"copy_bw_bytes_per_s": 4.3e12},
               "sweeps": {name: {"cases": 2}}}
        if name in finished:
            job["finished_utc"] = end
        (d / "jobs" / name).mkdir(parents=True)
        (d / "jobs" / name / "provenance.json").write_text(json.dumps(job))
    (d / "bench_c1.csv").write_text("config,impl\n")
    (d / "e2e.csv").write_text("config,impl\n")
    (d / "check.csv").write_text("op,status\n")


@pytest.mark.parametrize("name, slug", [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"),
                                        ("NVIDIA H100 PCIe", "h100"), ("NVIDIA GH200 480GB", "gh200"),
                                        ("NVIDIA A100-SXM4-80GB", "a100")])
def test_gpu_slug(name, slug):
    assert record.gpu_slug(name) == slug


def test_record_copies_and_refuses_overwrite(tmp_path):
    src, dst = tmp_path / "results", tmp_path / "data"
    _run(src)
    assert record.main(["--from", str(src), "--to", str(dst)]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["bench_c1.csv", "provenance.json"]
    assert record.main(["--from", str(src), "--to", str(dst)]) == 1  # exists: refused
    assert record.main(["--from", str(src), "--to", str(dst), "--force", "--with-logs"]) == 0
    assert (dst / "run.log").exists()


def test_record_defaults_to_the_gpu_of_the_provenance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _pipeline_run(tmp_path / "results" / "live")
    assert record.main([]) == 0  # --from results/live --to data/h200
    dst = tmp_path / "data" / "h200"
    assert sorted(p.name for p in dst.iterdir()) == ["bench_c1.csv", "check.csv", "e2e.csv", "provenance.json"]
    meta = json.loads((dst / "provenance.json").read_text())
    assert meta["finished_utc"] == "20261201T2201Z" and meta["started_utc"] == "20261201T2150Z"
    assert meta["wall_s"] == 120.0 and set(meta["jobs"]) == {"c1", "e2e"} and set(meta["sweeps"]) == {"c1", "e2e"}
    assert meta["ceilings"]["copy_bw_bytes_per_s"] == 4.3e12
    assert record.main([]) == 1  # data/h200 exists: refused, nothing replaced
    assert record.main(["--to", "data/h200/rerun"]) == 0
    assert not (tmp_path / "data" / "h200" / "rerun" / "logs").exists()
    _run(tmp_path / "h100run")
    assert record.main(["--from", "h100run"]) == 0 and (tmp_path / "data" / "h100" / "bench_c1.csv").exists()


def test_record_refuses_unfinished_or_empty(tmp_path):
    src = tmp_path / "r"
    _run(src, finished=False)
    assert record.main(["--from", str(src), "--to", str(tmp_path / "d")]) == 1
    assert record.main(["--from", str(tmp_path / "none"), "--to", str(tmp_path / "d")]) == 1
    _pipeline_run(tmp_path / "live", finished=("c1",))
    with pytest.raises(ValueError, match=r"bench job\(s\) \['e2e'\]"):
        record.record(tmp_path / "live", tmp_path / "d")
    _run(tmp_path / "nogpu", gpu="")
    with pytest.raises(ValueError, match="names no GPU"):
        record.record(tmp_path / "nogpu")


def test_record_with_logs_takes_the_live_pipelines_logs(tmp_path):
    """The live pipeline writes its logs beside the run (results/logs/live/); --with-logs copies them to <dst>/logs/
    and refuses to overwrite them without --force."""
    live = tmp_path / "results" / "live"
    _pipeline_run(live)
    (tmp_path / "results" / "logs" / "live").mkdir(parents=True)
    for name in ("bench_c1.log", "build.log"):
        (tmp_path / "results" / "logs" / "live" / name).write_text(name)
    dst = tmp_path / "data" / "h200"
    assert record.main(["--from", str(live), "--to", str(dst), "--with-logs"]) == 0
    assert sorted(p.name for p in (dst / "logs").iterdir()) == ["bench_c1.log", "build.log"]
    assert (dst / "logs" / "build.log").read_text() == "build.log"
    (dst / "bench_c1.csv").unlink()
    assert record.main(["--from", str(live), "--to", str(dst), "--with-logs"]) == 1  # the logs exist: refused
