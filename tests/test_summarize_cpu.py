"""scripts/bench/summarize.py: issue 11's best-of-ours against best-peer figures, its targets, issue 12's peer tables.

The run is a tiny synthetic folder written in tmp_path (a test fixture, not results); every expected number below
follows from its rows by hand."""
import importlib.util
import json
import math
from pathlib import Path

import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location("summarize", Path(__file__).parents[1] / "scripts/bench/summarize.py")
summarize = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summarize)

COLS = ["config", "impl", "status", "batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype", "graph",
        "median_us", "rel_err", "roofline_us", "floor_us", "tflops", "pct_roofline", "levels", "chunk_size", "note"]
A = dict(config="c1_system_prompt", batch=16, q_heads=32, kv_heads=32, prefix=0, suffix=512, roofline_us=50.0)
B = dict(config="c1_system_prompt", batch=32, q_heads=32, kv_heads=32, prefix=1024, suffix=64, roofline_us=45.0)
C = dict(config="c3_gqa_large_batch", batch=1024, q_heads=32, kv_heads=8, prefix=2048, suffix=0, roofline_us=70.0)
D = dict(config="c1_system_prompt", batch=16, q_heads=32, kv_heads=32, prefix=1024, suffix=64, roofline_us=5.0,
         dtype="float16")


def _row(case, impl, graph, us, status="ok", rel_err=1e-3, **kw):
    r = {"dtype": "bfloat16", "head_dim": 128, "levels": "", "chunk_size": 64, "note": "", "tflops": 1.0,
         "pct_roofline": 50.0, **case, "impl": impl, "graph": graph, "status": status, "rel_err": rel_err,
         "median_us": us if status == "ok" else ""}
    r.update(kw)
    return r


ROWS = [
    # A: ours 90 (tk_chunk_attn, graph) against sdpa_naive 80: slower, 0.889x; fasttree wrong takes no part.
    _row(A, "tk_hydragen", 1, 100.0), _row(A, "tk_hydragen", 0, 110.0), _row(A, "tk_chunk_attn", 1, 90.0),
    _row(A, "sdpa_naive", 1, 80.0, rel_err=2e-3), _row(A, "fasttree", 1, 1.0, status="wrong: illegal | address"),
    # B: graph in both: 200 / 50 = 4.0; flashinfer_decode's faster eager-only row is not compared.
    _row(B, "tk_hydragen", 1, 50.0), _row(B, "tk_hydragen", 0, 60.0), _row(B, "sdpa_naive", 1, 200.0),
    _row(B, "flashinfer_decode", 0, 40.0, rel_err=5e-3, note="flashinfer 0.7.2"),
    _row(B, "flashinfer_decode", 1, "", status="unavailable: no graph"),
    _row(B, "fasttree", 1, 300.0, rel_err=4e-3, note="q tiles [8, 2] @ FastTree-Artifact 167928b56513; bfloat16"),
    # C: the new peer sglang_triton (90) beats ours (100): 0.9x; the old peer set's best is 125: 1.25x.
    _row(C, "tk_hydragen", 1, 100.0, tflops=400.0), _row(C, "flashinfer_cascade", 1, 125.0),
    _row(C, "sglang_triton", 1, 90.0),
    # D (fp16, roofline 5 us): the peer is ok in eager only, so eager: 18 / 10 = 1.8x, ours 2.0x its roofline.
    _row(D, "tk_chunk_attn", 1, 9.0), _row(D, "tk_chunk_attn", 0, 10.0), _row(D, "sdpa_naive", 0, 18.0),
    _row(D, "sdpa_naive", 1, "", status="oom"),
]
PROV = {"peers": {"flashinfer": "0.7.2"}, "torch": {"version": "2.11.0"}}


def _run(tmp_path, rows, prov=PROV):
    d = tmp_path / "run"
    d.mkdir(parents=True)
    df = pd.DataFrame(rows, columns=COLS)
    for cfg, g in df.groupby("config"):
        g.to_csv(d / f"bench_{cfg}.csv", index=False)
    if prov is not None:
        (d / "provenance.json").write_text(json.dumps(prov))
    return d


def test_best_of_ours_against_best_peer(tmp_path):
    df = summarize.load_bench(_run(tmp_path, ROWS))
    s = summarize.issue11_stats(df)
    speed = {"A": 80 / 90, "B": 4.0, "C": 0.9, "D": 1.8}
    assert s["cases"] == 4 and s["per_config"] == {"c1_system_prompt": 3, "c3_gqa_large_batch": 1}
    assert s["geomean"] == pytest.approx(math.prod(speed.values()) ** 0.25)
    assert list(s["slower"]["case"]) == ["c1 B16 H32/32 P0 S512", "c3 B1024 H32/8 P2048 S0"]
    assert s["min"]["speedup"] == pytest.approx(80 / 90) and s["min"]["peer_impl"] == "sdpa_naive"
    assert s["max"]["speedup"] == pytest.approx(4.0)
    t = s["table"].set_index("case")
    assert tuple(t.loc["c1 B32 H32/32 P1024 S64", ["graph", "peer_impl"]]) == (1, "sdpa_naive")
    assert t.loc["c1 B16 H32/32 P1024 S64 fp16", "graph"] == 0
    assert t.loc["c1 B16 H32/32 P1024 S64 fp16", "speedup"] == pytest.approx(1.8)
    # ours / roofline: A 1.8, B 1.11, C 1.43, D 2.0 (eager, the mode compared)
    assert (s["roofline_cases"], s["within_115"], s["within_15"], s["under_10us"]) == (4, 1, 2, 1)
    # the best peer at each roofline: A 80/50, B 200/45, C 90/70, D 18/5 (eager)
    assert s["ceiling"] == pytest.approx((80 / 50 * 200 / 45 * 90 / 70 * 18 / 5) ** 0.25)

    old = summarize.issue11_stats(df, list(summarize.OLD_PEERS))
    assert len(old["slower"]) == 1 and old["geomean"] == pytest.approx((80 / 90 * 4.0 * 1.25 * 1.8) ** 0.25)


def test_issue11_targets_and_auto(tmp_path):
    df = summarize.load_bench(_run(tmp_path, ROWS))
    text = "\n".join(summarize.issue11_targets(df))
    assert "| 11 of 93 (all in c3) | 2 of 4; old peer set: 1 of 4, on c1–c5 1 of 4 | no |" in text
    assert "400 TFLOP/s (100.0 µs, tk_hydragen, graph=1) | no |" in text
    assert "| best of ours, no tk_auto rows recorded: 0.89× worst (c1 B16 H32/32 P0 S512, tk_chunk_attn)" in text
    assert "1 of 4 (25 %); 1 cases have a roofline < 10 µs | no |" in text
    # c4: tk_chunk_attn against sdpa_hydragen (graph mode, whatever is faster); c3 8/1 S512: best ours / roofline
    c4 = dict(config="c4_chunk_first", batch=32, q_heads=16, kv_heads=16, prefix=16384, suffix=0, roofline_us=10.0)
    c8 = dict(config="c8_trees", batch=64, q_heads=32, kv_heads=32, prefix=2048, suffix=128, roofline_us=40.0,
              levels="tree:sample64=1x2048|128")
    gqa = dict(config="c3_gqa_large_batch", batch=512, q_heads=8, kv_heads=1, prefix=1024, suffix=512, roofline_us=20.0)
    extra = [_row(c4, "tk_chunk_attn", 1, 100.0), _row(c4, "tk_chunk_first", 1, 10.0),
             _row(c4, "sdpa_hydragen", 1, 110.0), _row(c4, "sdpa_hydragen", 0, 500.0),
             _row(c4 | {"batch": 64}, "tk_chunk_attn", 1, 100.0), _row(c4 | {"batch": 64}, "sdpa_hydragen", 1, 150.0),
             _row(gqa, "tk_hydragen", 1, 30.0), _row(gqa, "tk_chunk_attn", 1, 26.0),
             _row(gqa, "tk_chunk_attn", 0, 20.0),
             _row(c8, "tk_chunk_attn", 1, 100.0), _row(c8, "sdpa_naive", 1, 50.0)]  # c8: outside issue 11's c1-c5
    text = "\n".join(summarize.issue11_targets(summarize.load_bench(_run(tmp_path / "c4", ROWS + extra))))
    assert f"| {(1.1 * 1.5) ** 0.5:.2f}× geomean (1.10× worst, c4 B32 H16/16 P16384 S0; 2 cases) | no |" in text
    assert "| 1.30–1.30× roofline over 1 cases (worst c3 B512 H8/1 P1024 S512) | yes |" in text
    assert "| 3 of 7; old peer set: 2 of 7, on c1–c5 1 of 6 | no |" in text
    # with tk_auto rows (backend="auto"), the prefix-0 target takes tk_auto alone: 80 / 70
    df = summarize.load_bench(_run(tmp_path / "auto", ROWS + [_row(A, "tk_auto", 1, 70.0)]))
    text = "\n".join(summarize.issue11_targets(df))
    assert f"| tk_auto: {80 / 70:.2f}× worst (c1 B16 H32/32 P0 S512, tk_auto)" in text
    # auto's rule runs SDPA there (nothing shared, 512 keys), so the target compares sdpa_naive's call with itself
    assert f"in 1 of them auto runs the plain SDPA decode, sdpa_naive's own call ({80 / 70:.3f}–{80 / 70:.3f}×)" in text
    assert "| yes |" in text


def test_floor_under_the_method(tmp_path):
    # floors: A 60 (1.2x its roofline 50), B 46 (1.02x), C 70 (1.0x), D 8 (1.6x); the compared rows of ours:
    # A 90 (1.5x its floor), B 50 (1.09x), C 100 (1.43x), D eager 10 (1.25x)
    floors = {"c1_system_prompt/16/0/bfloat16": 60.0, "c1_system_prompt/32/1024/bfloat16": 46.0,
              "c3_gqa_large_batch/1024/2048/bfloat16": 70.0, "c1_system_prompt/16/1024/float16": 8.0}
    rows = [r | {"floor_us": floors[f"{r['config']}/{r['batch']}/{r['prefix']}/{r.get('dtype', 'bfloat16')}"]}
            for r in ROWS]
    df = summarize.load_bench(_run(tmp_path, rows))
    s = summarize.issue11_stats(df)
    assert (s["floor_cases"], s["floor_over_115"], s["floor_over_15"]) == (4, 2, 1)
    assert (s["within_115_floor"], s["within_15_floor"]) == (1, 4)
    assert s["floor_ceiling"] == pytest.approx((80 / 60 * 200 / 46 * 90 / 70 * 18 / 8) ** 0.25)
    text = "\n".join(summarize.issue11_section(df) + summarize.issue11_targets(df))
    assert "above 1.15× the roofline in 2 of 4 (50 %)" in text and "within 1.15× of its floor: 1 of 4 (25 %)" in text
    assert "the floor under the method is above 1.15× the roofline in 2 cases | no |" in text
    # headroom: c1 holds A 1.5x, B 50/46 and D 1.25x its floor, c3 holds C 100/70; shares of the summed log gaps
    h = summarize.headroom(s["table"]).set_index("config")
    c1, c3 = math.log(1.5) + math.log(50 / 46) + math.log(1.25), math.log(100 / 70)
    assert h.loc["c1", "share"] == pytest.approx(c1 / (c1 + c3))
    assert h.loc["c3", "share"] == pytest.approx(c3 / (c1 + c3))
    assert h.loc["c1", "over_floor"] == pytest.approx(math.exp(c1 / 3))
    assert h.loc["c1", "furthest"] == "B16 H32/32 P0 S512 (tk_chunk_attn, 1.50×)"
    assert "| c3 | 1 | 0.90× | 1.43× | " in text
    # a case under its floor adds no gap: C at 60 us (0.86x its floor) leaves c1 all of it
    fast_c = [r | {"median_us": 60.0} if r["config"] == "c3_gqa_large_batch" and r["impl"] == "tk_hydragen" else r
              for r in rows]
    h2 = summarize.headroom(summarize.issue11_stats(summarize.load_bench(_run(tmp_path / "fast", fast_c)))["table"])
    assert h2.set_index("config")["share"].to_dict() == {"c1": 1.0, "c3": 0.0}
    # a run without floor_us says so
    assert "- the floor under the method (floor_us): not measured in this run" in summarize.issue11_section(
        summarize.load_bench(_run(tmp_path / "old", ROWS)))


def test_issue12_status_versions_speedups_errors(tmp_path):
    df = summarize.load_bench(_run(tmp_path, ROWS))
    st = summarize.peer_status(df)
    assert st.loc["fasttree", "c1_system_prompt"] == "ok 1; wrong: illegal / address ×1"
    assert st.loc["flashinfer_decode", "c1_system_prompt"] == "ok 1"  # ok in one mode counts the case ok
    assert st.loc["sdpa_naive", "c1_system_prompt"] == "ok 3" and st.loc["sdpa_naive", "c3_gqa_large_batch"] == "–"
    assert summarize.peer_versions(PROV, "flashinfer_decode") == "peers.flashinfer 0.7.2"
    assert summarize.peer_versions(PROV, "fasttree") == "not in provenance"
    assert summarize.peer_versions(PROV, "prior_tk_chunk_first") == "not in provenance"
    assert summarize.note_commits(df, "fasttree") == "167928b56513"
    text = "\n".join(summarize.issue12_section(df, PROV))
    g = (80 / 90 * 4.0 * 1.8) ** (1 / 3)
    assert (f"| sdpa_naive | 3 | 1 | {g:.2f}× | 0.89× (c1 B16 H32/32 P0 S512) | 4.00× (c1 B32 H32/32 P1024 S64) |"
            in text)
    assert "| fasttree | 1 | 0 | 6.00× |" in text  # 300 / 50 in graph mode
    assert "| flashinfer_decode | 1 | 1 | 0.67× |" in text  # eager only: 40 / 60
    assert "| flashinfer_decode | 1 | 5.00e-03 | c1 B32 H32/32 P1024 S64 |" in text
    assert "| fasttree | 1 | 4.00e-03 |" in text  # the wrong row's error is not counted


def test_main_without_peers_or_provenance(tmp_path, capsys):
    """A run of our kernels alone (as data/h100 lacks most peers) prints every section without failing."""
    d = _run(tmp_path, [r for r in ROWS if r["impl"].startswith("tk_")], prov=None)
    assert summarize.main(["summarize.py", str(d)]) == 0
    out = capsys.readouterr().out
    assert "No case has an ok row of ours and of a peer." in out and "No peer rows in this run." in out
    assert summarize.main(["summarize.py", str(tmp_path / "nothing")]) == 2
    assert "holds no bench_*.csv" in capsys.readouterr().err


def test_readme_table_cells(tmp_path):
    """Per configuration and peer, tk_hydragen / tk_chunk_attn geomeans, "–" for a side with no common case."""
    lines = summarize.readme_table(summarize.load_bench(_run(tmp_path, ROWS)))
    c1 = next(line for line in lines if line.startswith("| c1_system_prompt |")).split(" | ")
    peers = list(summarize.README_PEERS)
    # sdpa_naive: tk_hydragen on A (80/100, graph) and B (200/50); tk_chunk_attn on A (80/90) and D (18/10, eager)
    assert c1[1 + peers.index("sdpa_naive")] == f"{(0.8 * 4.0) ** 0.5:.2f}× / {(80 / 90 * 1.8) ** 0.5:.2f}×"
    assert c1[1 + peers.index("fasttree")] == "6.00× / –"  # B: 300 / 50; tk_chunk_attn meets no ok fasttree row
    assert c1[1 + peers.index("flashinfer_decode")] == "0.67× / –"  # B eager only: 40 / 60
    assert c1[1 + peers.index("deft")] == "–"
    c3 = next(line for line in lines if line.startswith("| c3_gqa_large_batch |")).split(" | ")
    assert c3[1 + peers.index("sglang_triton")] == "0.90×"  # tk_hydragen alone ran there


def test_readme_results_table_is_the_recorded_h200_run():
    """The README's table is summarize.py's for data/h200, row for row: re-recording means updating the README."""
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text()
    rows = [r for r in summarize.readme_table(summarize.load_bench(root / "data" / "h200")) if r.startswith("|")]
    lines = readme.splitlines()
    start = lines.index(rows[0])
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    assert lines[start:end] == rows  # the whole block, no more: a replacement must not carry other tables along
