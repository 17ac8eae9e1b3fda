"""Tree cases of the harness on the CPU (configuration 8): the generator, the level form, the sharing arithmetic
against a real ChunkKVCache, the float64 reference, the tree paths of the PyTorch peers, and the host-side tables of
the Triton / FlashInfer tree peers (checked by doing attention through them in PyTorch)."""
import math

import pytest
import torch

from tkprefix import ChunkKVCache
from tkprefix.bench import peers_tree as pt
from tkprefix.bench.cases import Case, expand_grid, load_sweep
from tkprefix.bench.inputs import full_kv, make_inputs, reference_rows, rel_err
from tkprefix.bench.peers import REGISTRY, SdpaNaive, TkChunkAttn, _tokens, tree_reason
from tkprefix.bench.trees import Tree, chain_tree, generate

SPECS = {
    "regular": {"name": "reg", "fanout": [2, 3], "lengths": [40, 17, 9]},
    "uneven": {"name": "uneven", "fanout": [[1, 4], [1, 3]], "lengths": [[30, 90], [1, 70], [1, 40]], "seed": 7},
    "pruned": {"name": "pruned", "fanout": [[2, 4], [2, 3], [2, 3]], "lengths": [[20, 60], [5, 40], [5, 40], [1, 30]],
               "prune": 0.4, "seed": 11},
}


def tree_case(spec, hq=4, hkv=2, dtype="float32", chunk=16):
    return Case.for_tree("t", generate(spec), hq, hkv, 32, dtype=dtype, chunk_size=chunk)


def test_tree_validation_errors():
    with pytest.raises(ValueError, match="parents\\[0\\]"):
        Tree((0, 0), (1, 1))
    with pytest.raises(ValueError, match="preorder"):
        Tree((-1, 0, 1, 1, 0, 2), (1,) * 6)  # node 5's parent 2 is not on the path to node 4
    with pytest.raises(ValueError, match="lengths\\[1\\]"):
        Tree((-1, 0), (3, 0))
    with pytest.raises(ValueError, match="lengths needs one entry per depth"):
        generate({"fanout": [2], "lengths": [3]})
    with pytest.raises(ValueError, match="unknown keys"):
        generate({"fanout": [], "lengths": [3], "depth": 2})


def test_generator_is_seeded_and_shapes_hold():
    a, b = generate(SPECS["uneven"]), generate(SPECS["uneven"])
    assert a == b
    reg = generate(SPECS["regular"])
    assert reg.n_leaves == 6 and reg.depth == 3 and reg.level_form == (((1, 40), (2, 17)), 9)
    assert isinstance(generate(SPECS["pruned"]).level_form, str)
    p = generate(SPECS["pruned"])
    assert len({p.depth_of[leaf] for leaf in p.leaves}) > 1 and p.depth == 4
    for t in (a, reg, p):  # preorder: a node's leaves are one contiguous batch range, paths add up
        for i, (lo, hi) in enumerate(t.leaf_range):
            assert all(i in t.path(b) for b in range(lo, hi))
        assert t.path_tokens == sum(sum(t.lengths[i] for i in t.path(b)) for b in range(t.n_leaves))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_chunk_sharing_formula_matches_chunk_kv_cache(name):
    case = tree_case(SPECS[name], chunk=16)
    t = case.tree
    cache = ChunkKVCache(2, 8, chunk_size=16, dtype=torch.float32, capacity_chunks=t.chunks(16))
    for b in range(t.n_leaves):
        n = t.path_len(b)
        cache.add_seq(_tokens(case, b), torch.zeros(n, 2, 8), torch.zeros(n, 2, 8))
    st = cache.stats()
    assert st["chunks_used"] == t.chunks(16)  # the capacity is exact: the cache filled it
    assert st["physical_tokens"] == t.chunk_tokens(16) and st["logical_tokens"] == t.path_tokens
    assert t.unique_tokens <= t.chunk_tokens(16) <= t.path_tokens


def test_level_form_inputs_are_views_and_match_levels():
    case = tree_case(SPECS["regular"])
    assert case.levels == ((1, 40), (2, 17)) and case.suffix == 9 and case.batch == 6
    inp = make_inputs(case, "cpu", seed=1)
    flat = Case("t", 6, 4, 2, 32, case.levels, 9, dtype="float32")  # the same case without the tree
    for b in range(6):
        k_tree, v_tree = full_kv(inp, b)
        inp.tree = None
        k_lv, v_lv = full_kv(inp, b)
        inp.tree = case.tree
        assert torch.equal(k_tree, k_lv) and torch.equal(v_tree, v_lv)
    assert flat.unique_bytes == case.unique_bytes and flat.flops == case.flops


@pytest.mark.parametrize("name", sorted(SPECS))
def test_tree_paths_of_torch_peers_match_reference(name):
    case = tree_case(SPECS[name])
    inp = make_inputs(case, "cpu", seed=2)
    rows = list(range(case.batch))
    ref = reference_rows(case, inp, rows)
    for impl in (SdpaNaive(), TkChunkAttn("torch_chunk_attn", "torch")):
        assert tree_reason(impl, case) is None
        p = impl.prepare(case, inp)
        out = p.canonical(p.run())
        assert out.shape == (case.batch, case.q_heads, case.head_dim), impl.name
        assert rel_err(out[rows], ref) < 1e-5, impl.name
        assert p.extra["sharing"] > 0 and p.extra["kv_tokens_read"] >= case.tree.unique_tokens


def test_level_only_impls_get_a_reason_on_irregular_trees():
    case = tree_case(SPECS["uneven"])
    assert not case.levels
    for name in ("sdpa_hydragen", "tk_hydragen", "hydragen_upstream"):
        r = tree_reason(REGISTRY[name], case)
        assert r and "no level form" in r and "unequal" in r
    assert tree_reason(REGISTRY["tk_hydragen"], tree_case(SPECS["regular"])) is None
    pruned = tree_case(SPECS["pruned"])
    assert "different depths" in tree_reason(REGISTRY["tk_hydragen"], pruned)


def _attend(q, k, v):
    """q (Hq, D), k/v (N, Hkv, D) → (Hq, D) float64."""
    g = q.shape[0] // k.shape[1]
    k = k.double().repeat_interleave(g, 1)
    v = v.double().repeat_interleave(g, 1)
    p = torch.softmax(torch.einsum("hd,nhd->hn", q.double(), k) / math.sqrt(q.shape[-1]), -1)
    return torch.einsum("hn,nhd->hd", p, v)


LEVEL_CASES = [
    Case("t", 6, 4, 2, 32, ((1, 40), (3, 16)), 9, dtype="float32"),
    Case("t", 4, 4, 4, 32, ((1, 48),), 0, dtype="float32"),
]


@pytest.mark.parametrize("case", LEVEL_CASES + [tree_case(s) for s in SPECS.values()], ids=lambda c: c.label())
def test_node_table_store_and_token_tables_reproduce_attention(case):
    inp = make_inputs(case, "cpu", seed=4)
    table = pt.node_table(case, inp)
    assert not isinstance(table, str)
    K, V = table.store()
    assert K.shape[0] == sum(table.lengths) == table.offsets[-1]
    ref = reference_rows(case, inp, list(range(case.batch)))
    q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)
    # SGLang's req_to_token table
    r2t, lens = pt.req_to_token(table, case.batch)
    out = torch.stack([_attend(q[b], K[r2t[b, : lens[b]]], V[r2t[b, : lens[b]]]) for b in range(case.batch)])
    assert rel_err(out, ref) < 1e-10
    # FlashInfer decode's page tables (page size 1 always works; 16 where the inner nodes are multiples of 16)
    for ps in sorted({1, pt.decode_page_size(table)}):
        first, indptr, indices, last = pt.decode_pages(table, ps)
        tok = torch.cat([torch.arange(table.offsets[i], table.offsets[i + 1]) for i in range(len(table.lengths))])
        page_tok = torch.full(((first[-1] + -(-table.lengths[-1] // ps)) * ps,), -1, dtype=torch.long)
        for i, f in enumerate(first):  # node i's tokens fill its pages from the first
            page_tok[f * ps: f * ps + table.lengths[i]] = tok[table.offsets[i]: table.offsets[i + 1]]
        outs = []
        for b in range(case.batch):
            pages = indices[indptr[b]: indptr[b + 1]]
            idx = torch.cat([page_tok[p * ps: (p + 1) * ps] for p in pages[:-1]]
                            + [page_tok[pages[-1] * ps: pages[-1] * ps + last[b]]])
            assert (idx >= 0).all()
            outs.append(_attend(q[b], K[idx], V[idx]))
        assert rel_err(torch.stack(outs), ref) < 1e-10, ps
    # DeFT's padded-cache index r * max_len + p, remapped to the store
    max_len = max(lens)
    entries = torch.tensor([b * max_len + p for b in range(case.batch) for p in range(lens[b])] + [-1] * 32,
                           dtype=torch.int32)
    remapped = pt.remap_padded_entries(entries, table, max_len)
    assert (remapped[-32:] == -1).all()
    assert torch.equal(remapped[:-32].long(), torch.cat([r2t[b, : lens[b]] for b in range(case.batch)]))


def test_node_table_reasons_and_forest():
    no_root = Case("t", 4, 4, 4, 32, (), 8, dtype="float32")
    assert "root" in pt.node_table(no_root)
    assert not isinstance(pt.node_table(no_root, rooted=False), str)
    bad_nest = Case("t", 6, 4, 4, 32, ((1, 8), (2, 8), (3, 8)), 4, dtype="float32")
    assert "nest" in pt.node_table(bad_nest)
    with pytest.raises(ValueError, match="page_size"):
        pt.decode_pages(pt.node_table(Case("t", 2, 4, 4, 32, ((1, 20),), 3, dtype="float32")), 16)


def test_tree_peer_reasons_without_artifact(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTTREE_ARTIFACT_ROOT", str(tmp_path))
    case = tree_case(SPECS["uneven"], dtype="bfloat16")
    for name in ("fasttree", "deft", "sglang_triton"):
        r = REGISTRY[name].unavailable_reason(case)
        assert r and ("not found" in r or "triton" in r), (name, r)
    assert pt.versions()["fasttree_artifact"].startswith("unavailable")


def test_deft_and_fasttree_shape_reasons(monkeypatch):
    monkeypatch.setattr(pt, "_artifact_reason", lambda: None)
    bf16 = tree_case(SPECS["uneven"], dtype="bfloat16")
    assert "float16" in pt.DeFT().unavailable_reason(bf16)
    assert pt.DeFT().unavailable_reason(tree_case(SPECS["uneven"], dtype="float16")) is None
    g32 = Case("t", 4, 32, 1, 128, ((1, 64),), 8, dtype="float16")
    assert "group 32" in pt.FastTree().unavailable_reason(g32)
    assert "root" in pt.FastTree().unavailable_reason(Case("t", 4, 4, 4, 32, (), 8, dtype="float16"))
    assert pt.FastTree().unavailable_reason(bf16) is None


def test_sweep_grid_trees_and_dtypes():
    cases = list(expand_grid("c", {"heads": [[4, 2]], "dtype": ["float16", "bfloat16"],
                                   "trees": [SPECS["regular"], SPECS["pruned"]]}, head_dim=32))
    assert [c.dtype for c in cases] == ["float16", "bfloat16"] * 2
    assert cases[0].tree.name == "reg" and cases[0].levels and not cases[2].levels
    with pytest.raises(ValueError, match="trees fix batch"):
        list(expand_grid("c", {"batch": [2], "trees": [SPECS["regular"]]}))
    row = cases[2].base_row()
    assert row["levels"] == "tree:pruned" and row["sharing_ideal"] > 1 and row["depth"] == 4
    lv = list(expand_grid("c", {"batch": [4], "prefix": [8], "suffix": [4], "dtype": ["float16", "bfloat16"]}))
    assert [c.dtype for c in lv] == ["float16", "bfloat16"]


def test_c8_sweep_loads():
    s = load_sweep("config/sweeps/c8_trees.yaml")
    trees = {c.tree.name: c.tree for c in s.cases}
    assert len(s.cases) == 2 * len(trees) and {c.dtype for c in s.cases} == {"float16", "bfloat16"}
    assert 2 <= min(t.depth for t in trees.values()) and max(t.depth for t in trees.values()) == 10
    assert min(t.n_leaves for t in trees.values()) >= 10 and max(t.n_leaves for t in trees.values()) <= 4096
    assert min(min(t.lengths) for t in trees.values()) >= 16 and max(max(t.lengths) for t in trees.values()) <= 4096
    assert any(isinstance(t.level_form, str) for t in trees.values())
    assert any(not isinstance(t.level_form, str) for t in trees.values())
    for impl in s.impls:
        assert impl in REGISTRY


def test_chain_tree():
    t = chain_tree([3, 4, 5])
    assert t.n_leaves == 1 and t.path_tokens == 12 and t.sharing_ideal == 1.0
