"""`tkprefix compare`: rows matched by case, ratios B/A per implementation, shares within 5 % / 10 %.

The runs are small synthetic CSVs written in tmp_path (test fixtures, not results)."""
import json

import pandas as pd
import pytest

from tkprefix.bench import compare

COLS = ["config", "impl", "status", "batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype", "graph",
        "median_us", "levels", "note"]


def _row(impl, batch, graph, us, status="ok", config="c1", levels="1x1024"):
    return {"config": config, "impl": impl, "status": status, "batch": batch, "q_heads": 32, "kv_heads": 8,
            "head_dim": 128, "prefix": 1024, "suffix": 64, "dtype": "bfloat16", "graph": graph,
            "median_us": us if status == "ok" else "", "levels": levels, "note": ""}


def _write(d, rows, gpu=None, name="bench_c1.csv"):
    d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLS).to_csv(d / name, index=False)
    if gpu:
        (d / "provenance.json").write_text(json.dumps({"gpu": {"name": gpu}}))
    return d


def test_ratios_and_shares(tmp_path, capsys):
    a = _write(tmp_path / "a", [_row("tk_x", 1, 0, 100.0), _row("tk_x", 1, 1, 50.0), _row("tk_x", 2, 0, 200.0),
                                _row("peer", 1, 0, 400.0), _row("peer", 2, 0, 800.0)], gpu="NVIDIA H100 80GB HBM3")
    b = _write(tmp_path / "b", [_row("tk_x", 1, 0, 104.0), _row("tk_x", 1, 1, 54.0), _row("tk_x", 2, 0, 180.0),
                                _row("peer", 1, 0, 200.0), _row("peer", 2, 0, "", status="oom"),
                                _row("peer", 4, 0, 10.0)], gpu="NVIDIA H200")
    s, rows = compare.compare(a, b)
    assert (s["a"]["gpu"], s["b"]["gpu"]) == ("NVIDIA H100 80GB HBM3", "NVIDIA H200")
    assert (s["matched"], s["only_a"], s["only_b"], s["ok_both"], s["ok_in_one_only"]) == (5, 0, 1, 4, 1)
    tk = s["per_impl"]["tk_x"]
    assert tk["rows"] == 3 and tk["min"] == pytest.approx(0.9) and tk["max"] == pytest.approx(1.08)
    assert tk["geomean"] == pytest.approx((1.04 * 1.08 * 0.9) ** (1 / 3))
    assert tk["within_5pct"] == pytest.approx(1 / 3) and tk["within_10pct"] == pytest.approx(1.0)
    assert s["per_impl"]["peer"]["rows"] == 1 and s["per_impl"]["peer"]["geomean"] == pytest.approx(0.5)
    assert s["all"]["rows"] == 4 and s["all"]["within_10pct"] == pytest.approx(0.75)
    assert s["per_mode"]["graph"]["rows"] == 1 and s["per_mode"]["graph"]["geomean"] == pytest.approx(1.08)
    assert s["per_mode"]["eager"]["rows"] == 3 and s["per_mode"]["eager"]["max"] == pytest.approx(1.04)
    assert len(rows) == 6

    out = tmp_path / "o"
    assert compare.main([str(a), str(b), "--json", str(out / "s.json"), "--csv", str(out / "rows.csv")]) == 0
    text = capsys.readouterr().out
    assert "tk_x" in text and "33.3 %" in text and "NVIDIA H200" in text
    assert "(all eager rows)" in text and "(all graph rows)" in text
    assert json.loads((out / "s.json").read_text())["all"]["rows"] == 4
    assert len(pd.read_csv(out / "rows.csv")) == 6


def test_key_separates_graph_mode_levels_and_config(tmp_path):
    """Same shape, different timing mode / tree / configuration: different cases, never averaged together."""
    a = _write(tmp_path / "a", [_row("tk_x", 1, 0, 100.0), _row("tk_x", 1, 1, 10.0),
                                _row("tk_x", 1, 0, 300.0, levels="2x512")])
    _write(tmp_path / "a", [_row("tk_x", 1, 0, 1000.0, config="c2")], name="bench_c2.csv")
    b = _write(tmp_path / "b", [_row("tk_x", 1, 0, 100.0), _row("tk_x", 1, 1, 10.0),
                                _row("tk_x", 1, 0, 300.0, levels="2x512")])
    _write(tmp_path / "b", [_row("tk_x", 1, 0, 2000.0, config="c2")], name="bench_c2.csv")
    s, _ = compare.compare(a, b)
    assert s["per_config"]["c1"]["max"] == pytest.approx(1.0) and s["per_config"]["c2"]["geomean"] == pytest.approx(2.0)
    assert s["all"]["within_5pct"] == pytest.approx(0.75)


def test_bad_runs_are_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    a = _write(tmp_path / "a", [_row("tk_x", 1, 0, 1.0)])
    assert compare.main([str(empty), str(a)]) == 2
    assert "holds no bench_*.csv" in capsys.readouterr().err
    with pytest.raises(ValueError, match="neither a folder nor a CSV"):
        compare.load_run(tmp_path / "missing")
    dup = _write(tmp_path / "dup", [_row("tk_x", 1, 0, 1.0), _row("tk_x", 1, 0, 2.0)])
    with pytest.raises(ValueError, match="share a case key"):
        compare.compare(dup, a)


def test_peer_speedups_prefer_graph_mode(tmp_path):
    d = _write(tmp_path / "a", [_row("tk_x", 1, 0, 100.0), _row("tk_x", 1, 1, 50.0), _row("peer", 1, 0, 300.0),
                                _row("peer", 1, 1, 200.0), _row("tk_x", 2, 0, 100.0), _row("peer", 2, 0, 150.0),
                                _row("peer", 4, 0, 10.0)])
    sp = compare.peer_speedups(compare.load_run(d))
    assert len(sp) == 1
    r = sp.iloc[0]
    assert (r["ours"], r["peer"], r["cases"]) == ("tk_x", "peer", 2)
    assert r["geomean"] == pytest.approx((4.0 * 1.5) ** 0.5) and r["max"] == pytest.approx(4.0)
