"""CPU tests of the results schema, sweep files and peer-unavailable rows."""
from pathlib import Path

import pytest
import torch

from tkprefix.bench import cases, schema
from tkprefix.bench.peers import REGISTRY, ChunkAttnUpstream, FlashInferCascade, HydragenUpstream

SWEEPS = Path(__file__).resolve().parents[1] / "config" / "sweeps"


def _row(**kw):
    r = {c: None for c in schema.COMMON_COLUMNS}
    r.update(config="c", impl="x", status="ok", batch=1, q_heads=1, kv_heads=1, head_dim=128, prefix=0, suffix=1,
             dtype="bfloat16", graph=0, median_us=2.0, p20_us=1.0, p80_us=3.0, n=10)
    r.update(kw)
    return r


def test_status_values():
    for s in ("ok", "oom", "unavailable: flash-attn not installed", "wrong: rel_err 0.5 > tol"):
        assert schema.valid_status(s)
    for s in ("", "fail", "unavailable:", "wrong"):
        assert not schema.valid_status(s)
    assert schema.unavailable("a\n  b") == "unavailable: a b"


def test_rows_validate(tmp_path):
    schema.validate_row(_row())
    with pytest.raises(ValueError, match="status"):
        schema.validate_row(_row(status="broken"))
    with pytest.raises(ValueError, match="median_us"):
        schema.validate_row(_row(status="oom"))  # a non-ok row must not carry a timing
    with pytest.raises(ValueError, match="p20_us"):
        schema.validate_row(_row(p20_us=5.0))
    with pytest.raises(ValueError, match="missing"):
        schema.validate_row({"status": "ok"})
    un = _row(status="unavailable: flash-attn not installed", median_us=None, p20_us=None, p80_us=None, n=None)
    path = tmp_path / "bench_c.csv"
    schema.write_csv(path, [_row(), un, {**un, "note": "extra"}], schema.COMMON_COLUMNS + schema.EXTRA_COLUMNS)
    rows = schema.read_csv(path)
    assert list(rows[0])[: len(schema.COMMON_COLUMNS)] == list(schema.COMMON_COLUMNS)
    assert rows[1]["status"] == "unavailable: flash-attn not installed" and rows[1]["median_us"] == ""
    assert rows[2]["note"] == "extra"
    with pytest.raises(ValueError, match=r"rows\[0\]"):
        schema.write_csv(path, [_row(status="nope")], schema.COMMON_COLUMNS)


def test_sweep_files_load_and_cover_configs_1_to_6():
    sweeps = cases.load_sweeps(SWEEPS)
    names = [s.config for s in sweeps]
    assert [n[:2] for n in names][:6] == ["c1", "c2", "c3", "c4", "c5", "c6"] and "c8_trees" in names
    for s in sweeps:
        for impl in s.impls:
            assert impl in REGISTRY, (s.config, impl)
        assert s.trimmed, f"{s.config}: say what was trimmed (or 'none')"
    c1 = sweeps[0]
    assert len(c1.cases) == 4 * 4 * 2 and {c.prefix for c in c1.cases} == {0, 1024, 2048, 4096}
    assert {c.levels for c in c1.cases if c.prefix == 0} == {()}
    c3 = sweeps[2]
    assert len(c3.cases) == 2 * 4 * 4 and {(c.q_heads, c.kv_heads) for c in c3.cases} == {(8, 1), (32, 8)}
    c5 = sweeps[4]
    assert c5.cases[0].levels == ((1, 2048), (8, 1024)) and c5.cases[0].prefix == 3072
    assert sweeps[5].kind == "e2e" and sweeps[5].raw["batch"] == [32, 128]
    assert cases.load_sweeps(SWEEPS, ["c4"])[0].config.startswith("c4")
    with pytest.raises(ValueError, match="--only"):
        cases.load_sweeps(SWEEPS, ["c9"])


def test_probe_sweeps_load():
    """config/probes: focused measurement sweeps (tkprefix bench --sweeps config/probes), not pipeline configurations."""
    probes = cases.load_sweeps(SWEEPS.parent / "probes")
    assert [s.config for s in probes] == ["p1_no_prefix", "p3_gqa_suffix"]
    for s in probes:
        assert all(impl in REGISTRY for impl in s.impls) and s.trimmed
    assert {c.prefix for c in probes[0].cases} == {0, 128}
    assert {(c.q_heads, c.kv_heads, c.suffix) for c in probes[1].cases} == {(8, 1, 512), (32, 8, 512)}


def test_case_validation_names_the_argument():
    with pytest.raises(ValueError, match="q_heads"):
        cases.Case("c", 4, 6, 4, 128, (), 10)
    with pytest.raises(ValueError, match=r"levels\[0\]"):
        cases.Case("c", 6, 8, 8, 128, ((4, 100),), 10)
    with pytest.raises(ValueError, match="at least one key"):
        cases.Case("c", 4, 8, 8, 128, (), 0)
    with pytest.raises(ValueError, match="grid"):
        list(cases.expand_grid("c", {"batch": [1], "bogus": [1]}))


def test_peer_unavailable_reasons_are_rows_not_crashes(monkeypatch):
    case = cases.Case("c", 256, 32, 8, 128, ((1, 1024),), 64)
    import builtins

    real = builtins.__import__

    def no(name, *a, **k):
        if name.split(".")[0] in ("flashinfer", "flash_attn", "chunk_attn", "hydragen"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda n: no(n))
    assert FlashInferCascade().unavailable_reason(case).startswith("flashinfer not importable")
    assert HydragenUpstream().unavailable_reason(case) == "flash-attn not installed"
    assert "chunk_attn" in ChunkAttnUpstream().unavailable_reason(case)
    assert schema.valid_status(schema.unavailable(HydragenUpstream().unavailable_reason(case)))
