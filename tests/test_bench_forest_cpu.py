"""Forest cases (configuration 7): the generator, the regular/irregular split, the inputs, FlashInfer's cascade
levels of a forest, and the prefix-tree cache on a forest against the float64 reference (CPU, small shapes)."""
import pytest
import torch

from tkprefix.bench.cases import Case, expand_grid, load_sweep
from tkprefix.bench.forest import Forest, make_forest
from tkprefix.bench.inputs import full_kv, make_inputs, reference_rows, rel_err
from tkprefix.bench.peers import FlashInferCascade, SdpaHydragen, TkChunkAttn, TkHydragen, forest_unavailable


def _small(seed=0, **kw):
    args = dict(prompts=4, prompt_len=(20, 90), fanout=(2, 5), suffix=(1, 40), doc_frac=0.5, docs_per_prompt=(2, 3),
                doc_len=(5, 70), seed=seed)
    args.update(kw)
    return make_forest(**args)


def _case(f, dtype="float32"):
    return Case("t", f.batch, 8, 2, 32, (), 0, dtype=dtype, chunk_size=16, forest=f)


def test_generator_and_validation():
    f = _small(seed=3)
    assert len(f.prompts) == 4 and f.batch >= 8 and any(d >= 0 for _, d, _ in f.seqs)
    assert all(20 <= n <= 90 for n in f.prompts) and all(1 <= s <= 40 for _, _, s in f.seqs)
    assert f.as_levels() is None and "irregular forest" in f.irregular_reason()
    assert _small(seed=3) == f  # seeded
    with pytest.raises(ValueError, match="contiguous"):
        Forest(prompts=(4, 4), docs=(), seqs=((0, -1, 1), (1, -1, 1), (0, -1, 1)))
    with pytest.raises(ValueError, match="not under prompt"):
        Forest(prompts=(4, 4), docs=((1, 3),), seqs=((0, 0, 1),))
    with pytest.raises(ValueError, match="fanout"):
        make_forest(prompts=2, prompt_len=(4, 8), fanout=(5, 2), suffix=(1, 2))
    with pytest.raises(ValueError, match="batch"):
        Case("t", f.batch + 1, 8, 2, 32, (), 0, forest=f)


def test_regular_forest_is_a_levels_case():
    reg = make_forest(prompts=4, prompt_len=(64, 64), fanout=(6, 6), suffix=(8, 8), doc_frac=1.0,
                      docs_per_prompt=(3, 3), doc_len=(32, 32), even_docs=True)
    assert reg.as_levels() == (((4, 64), (12, 32)), 8)
    grid = {"heads": [[8, 2]], "forest": [{"prompts": 4, "prompt_len": 64, "fanout": 6, "suffix": 8, "doc_frac": 1.0,
                                           "docs_per_prompt": 3, "doc_len": 32, "even_docs": True},
                                          {"prompts": 4, "prompt_len": [20, 90], "fanout": [2, 5], "suffix": [1, 40]}]}
    c_reg, c_irr = expand_grid("t", grid, head_dim=32)
    assert c_reg.forest is None and c_reg.levels == ((4, 64), (12, 32)) and c_reg.suffix == 8 and c_reg.batch == 24
    assert c_irr.forest is not None and c_irr.levels == () and "forest" in c_irr.label()
    with pytest.raises(ValueError, match="forest grid"):
        list(expand_grid("t", {"batch": [4], "forest": []}))


def test_c7_sweep_shape():
    sw = load_sweep("config/sweeps/c7_forest.yaml")
    forests = [c for c in sw.cases if c.forest is not None]
    assert len(forests) >= 2 and any(c.forest is None for c in sw.cases)
    for c in forests:
        f = c.forest
        fan = [b - a for a, b in f.groups(0)]
        assert len(f.prompts) >= 64 and 512 <= f.batch <= 4096 and min(fan) >= 4 and max(fan) <= 64
        assert all(1024 <= n <= 4096 for n in f.prompts) and all(16 <= s <= 512 for _, _, s in f.seqs)
        assert f.docs


def test_forest_inputs_and_reference():
    f = _small(seed=1)
    case = _case(f)
    inp = make_inputs(case, "cpu", seed=2)
    for b in range(f.batch):
        k, v = full_kv(inp, b)
        assert k.shape == (f.keys(b), 2, 32)
        p, d, s = f.seqs[b]
        assert torch.equal(k[:f.prompts[p]], inp.prompt_ks[p]) and torch.equal(k[f.shared(b):], inp.k[b, :s])
    assert case.unique_bytes == (f.unique_tokens * 2 * 32 * 2 * 4 + 2 * f.batch * 8 * 32 * 4)
    assert case.flops == 4 * 8 * 32 * f.total_keys


def test_flashinfer_forest_levels_cover_each_sequence_once():
    f = _small(seed=4)
    inp = make_inputs(_case(f), "cpu", seed=0)
    levels = FlashInferCascade()._forest_levels(inp)
    per_seq = [[] for _ in range(f.batch)]
    for segs in levels:
        assert segs[0][0] == 0 and segs[-1][1] == f.batch
        assert all(a1 == b0 for (_, b0, _, _), (a1, _, _, _) in zip(segs, segs[1:]))  # contiguous query runs
        for a, b, k, _v in segs:
            assert k.shape[0] > 0
            for s in range(a, b):
                per_seq[s].append(k)
    for b in range(f.batch):
        assert torch.equal(torch.cat(per_seq[b]), full_kv(inp, b)[0])
    assert FlashInferCascade()._pages(_case(f)) >= sum(
        -(-k.shape[0] // 16) for segs in levels for _, _, k, _ in segs)


def test_chunk_cache_on_a_forest_matches_float64():
    f = _small(seed=5)
    case = _case(f)
    inp = make_inputs(case, "cpu", seed=1)
    rows = list(range(f.batch))
    ref = reference_rows(case, inp, rows)
    p = TkChunkAttn("torch_chunk_attn", "torch").prepare(case, inp)
    out = p.canonical(p.run())
    assert out.shape == (f.batch, 8, 32) and rel_err(out, ref) < 1e-5


def test_forest_unavailable_rows():
    case = _case(_small(seed=2))
    for impl in (SdpaHydragen(), TkHydragen("tk_hydragen", "tk")):
        assert "irregular forest" in forest_unavailable(impl, case)
    assert forest_unavailable(TkChunkAttn("torch_chunk_attn", "torch"), case) is None
    assert forest_unavailable(FlashInferCascade(), case) is None
    assert forest_unavailable(SdpaHydragen(), Case("t", 4, 8, 2, 32, ((1, 8),), 4)) is None


def test_runner_reports_forest_rows_unavailable(monkeypatch):
    """run_case's availability path on a forest (inputs and the float64 reference on the CPU; every implementation
    here is one that cannot express the forest, so nothing reaches the device)."""
    from tkprefix.bench import inputs, runner, schema

    monkeypatch.setattr(runner, "make_inputs", lambda case, dev, seed=0: inputs.make_inputs(case, "cpu", seed=seed))
    case = _case(_small(seed=6), dtype="bfloat16")
    impls = ["sdpa_naive", "sdpa_hydragen", "tk_hydragen", "tk_chunk_first", "prior_tk_chunk_first"]
    rows = runner.run_case(case, impls, [False, True], None, {"copy_bw_bytes_per_s": 3e12, "gemm_flops_per_s": 7e14},
                           log=lambda m: None)
    assert [(r["impl"], r["graph"]) for r in rows] == [(i, g) for i in impls for g in (0, 1)]
    for r in rows:
        assert r["status"].startswith("unavailable: ") and r["levels"].startswith("forest"), r
        schema.validate_row(r)
    assert "irregular forest" in rows[2]["status"] and "takes no forest case" in rows[0]["status"]


def test_runner_ok_rows_on_a_forest(monkeypatch):
    """The whole run_case path for an implementation that runs a forest (the exact PyTorch chunk backend on the CPU),
    with the device-only steps (memory query, poisoning, timing) stood in for: a validated ok row with the forest's
    bytes and FLOPs."""
    from tkprefix.bench import inputs, runner, schema

    monkeypatch.setattr(runner, "make_inputs", lambda case, dev, seed=0: inputs.make_inputs(case, "cpu", seed=seed))
    monkeypatch.setattr(runner, "_poison_allocator", lambda *a: None)
    monkeypatch.setattr(runner, "estimate_us", lambda fn: 1.0)
    monkeypatch.setattr(runner, "time_interleaved", lambda rs, n, fl: {k: [5.0 + i for i in range(n)] for k in rs})
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (1 << 40, 1 << 40))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    case = _case(_small(seed=8), dtype="bfloat16")
    rows = runner.run_case(case, ["torch_chunk_attn"], [False, True], None,
                           {"copy_bw_bytes_per_s": 3e12, "gemm_flops_per_s": 7e14}, log=print, reps=10)
    ok, graph = rows
    assert ok["status"] == "ok" and ok["rel_err"] < 1e-2 and ok["unique_bytes"] == case.unique_bytes, ok
    assert graph["status"].startswith("unavailable: not graph-capturable")
    for r in rows:
        schema.validate_row(r)


def test_runner_isolate_times_each_implementation_apart(monkeypatch):
    """run_case(isolate=True), which the supervisor asks for after a hang in a case's interleaved timing: one timing
    group per implementation (its eager and graph runners), progress naming that implementation before its group (so
    a second hang names it), and the rows' note says they were timed apart."""
    from tkprefix.bench import inputs, runner, schema

    monkeypatch.setattr(runner, "make_inputs", lambda case, dev, seed=0: inputs.make_inputs(case, "cpu", seed=seed))
    monkeypatch.setattr(runner, "_poison_allocator", lambda *a: None)
    monkeypatch.setattr(runner, "estimate_us", lambda fn: 1.0)
    groups = []

    def timed(rs, n, fl):
        groups.append(sorted(rs))
        return {k: [5.0 + i for i in range(n)] for k in rs}

    monkeypatch.setattr(runner, "time_interleaved", timed)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (1 << 40, 1 << 40))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    case = Case("t", 6, 8, 2, 32, ((1, 40),), 9, dtype="float32", chunk_size=16)
    impls = ["sdpa_naive", "torch_chunk_attn"]
    steps = []
    kw = dict(log=print, reps=10, progress=lambda impl, stage: steps.append((impl, stage)))
    ceil = {"copy_bw_bytes_per_s": 3e12, "gemm_flops_per_s": 7e14}
    together = runner.run_case(case, impls, [False], None, ceil, **kw)
    assert groups == [[("sdpa_naive", False), ("torch_chunk_attn", False)]]
    assert [r["status"] for r in together] == ["ok", "ok"] and runner.ISOLATED_NOTE not in together[0]["note"]
    groups.clear(), steps.clear()
    apart = runner.run_case(case, impls, [False], None, ceil, isolate=True, **kw)
    assert groups == [[("sdpa_naive", False)], [("torch_chunk_attn", False)]]
    assert [s for s in steps if s[1].startswith("interleaved timing")] == [
        (name, f"interleaved timing of {name}") for name in impls]
    for r in apart:
        assert r["status"] == "ok" and runner.ISOLATED_NOTE in r["note"], r
        schema.validate_row(r)
