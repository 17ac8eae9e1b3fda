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
from tkprefix.bench.peers import REGISTRY, SdpaNaive, TkChunkAttn, TreeAttn, _tokens, tree_reason
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
    for impl in (SdpaNaive(), TkChunkAttn("torch_chunk_attn", "torch"), TreeAttn("torch_tree", "torch")):
        assert tree_reason(impl, case) is None
        p = impl.prepare(case, inp)
        out = p.canonical(p.run())
        assert out.shape == (case.batch, case.q_heads, case.head_dim), impl.name
        assert rel_err(out[rows], ref) < 1e-5, impl.name
        assert p.extra["sharing"] > 0 and p.extra["kv_tokens_read"] >= case.tree.unique_tokens


def test_tree_attention_reads_each_node_once_and_tk_tree_gives_a_reason():
    case = tree_case(SPECS["pruned"])
    p = REGISTRY["torch_tree"].prepare(case, make_inputs(case, "cpu", seed=3))
    assert p.extra["kv_tokens_read"] == case.tree.unique_tokens  # ideal sharing
    assert p.extra["sharing"] == round(case.tree.sharing_ideal, 4)
    assert REGISTRY["tk_tree"].unavailable_reason(case).startswith("TK backend unavailable")  # no GPU here
    assert "tree cases" in REGISTRY["torch_tree"].unavailable_reason(LEVEL_CASES[0])


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
    # FastTree's int32 K/V offsets: the c2/c3 cases whose pool reaches 2^31 elements crashed on the H200 (data/h200)
    assert "int32" in pt.FastTree().unavailable_reason(Case("t", 256, 32, 32, 128, ((1, 2048),), 2048))
    assert "int32" in pt.FastTree().unavailable_reason(Case("t", 4096, 32, 8, 128, ((1, 8192),), 512))
    assert pt.FastTree().unavailable_reason(Case("t", 256, 32, 32, 128, ((1, 32768),), 512)) is None
    assert pt.FastTree().unavailable_reason(Case("t", 4096, 32, 8, 128, ((1, 8192),), 256)) is None


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


# ---------------------------------------------------------------------------------------------------------------------
# The artifact's own planners (FastTree, DeFT) run on the CPU with a stand-in for triton (their kernels are only
# defined, never launched), and their tables executed by a float64 emulator of the kernels' contract: the adapters'
# tree description, requests, token store and DeFT's index remap must reproduce exact attention.
# ---------------------------------------------------------------------------------------------------------------------
class _Anything:
    def __getattr__(self, name):
        return _Anything()

    def __call__(self, *args, **kw):
        return args[0] if len(args) == 1 and callable(args[0]) and not kw else _Anything()


@pytest.fixture(scope="module")
def artifact():
    import importlib.util
    import sys
    import types

    root = pt.artifact_root()
    if not (root / "kernel_bench" / "fasttree.py").exists():
        pytest.skip(f"FastTree artifact not extracted at {root} (scripts/bench/extract_tree_peers.sh)")
    saved = {k: sys.modules.get(k) for k in ("triton", "triton.language", "triton.testing")}
    stubbed = False
    try:
        import triton  # noqa: F401
    except ImportError:
        stubbed = True
        tri = types.ModuleType("triton")
        tri.jit = lambda fn=None, **kw: fn if fn is not None else (lambda g: g)
        tri.language, tri.testing = _Anything(), _Anything()
        sys.modules.update({"triton": tri, "triton.language": tri.language, "triton.testing": tri.testing})

    class TorchOnCpu(types.ModuleType):  # the planners build their tables under torch.device("cuda")
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def device(*args, **kw):
            return torch.device("cpu")

    mods = {}
    for name, rel in (("fasttree", "kernel_bench/fasttree.py"), ("deft", "kernel_bench/DeFT.py")):
        path = root / rel
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(f"cpu_emulated_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.torch = TorchOnCpu("torch")
        mods[name] = mod
    yield mods
    if stubbed:  # put back what was there (nothing): later imports of triton see the real package or none
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _partials(q, K, V, kv, allow=None):
    """Rows q (n, Hq, D) against store tokens kv → (o (n, Hq, D), lse (n, Hq)) in float64; allow (n, L) masks keys."""
    g = q.shape[1] // K.shape[1]
    k = K[kv].double().repeat_interleave(g, 1)
    v = V[kv].double().repeat_interleave(g, 1)
    s = torch.einsum("nhd,lhd->nhl", q.double(), k) / math.sqrt(q.shape[-1])
    if allow is not None:
        s = s.masked_fill(~allow[:, None, :], float("-inf"))
    lse = torch.logsumexp(s, -1)
    return torch.einsum("nhl,lhd->nhd", torch.exp(s - lse[..., None]), v), lse


def _merge(mid_o, mid_lse, r2v, offs, lens, batch):
    out = []
    for r in range(batch):
        e = r2v[offs[r]: offs[r] + lens[r]].long()
        lse = mid_lse[e]
        w = torch.exp(lse - torch.logsumexp(lse, 0))
        out.append((w[..., None] * mid_o[e]).sum(0))
    return torch.stack(out)


TABLE_CASES = [tree_case(SPECS["uneven"], hq=8, hkv=2), tree_case(SPECS["pruned"], hq=4, hkv=4),
               tree_case({"name": "wide", "fanout": [40, [1, 3]], "lengths": [300, [1, 50], [1, 9]], "seed": 2}),
               Case("t", 6, 4, 2, 32, ((1, 40), (3, 130)), 9, dtype="float32"),
               Case("t", 4, 4, 4, 32, ((1, 200),), 0, dtype="float32")]


@pytest.mark.parametrize("case", TABLE_CASES, ids=lambda c: c.label())
def test_fasttree_plan_executes_to_exact_attention(artifact, case):
    inp = make_inputs(case, "cpu", seed=5)
    table = pt.node_table(case, inp)
    K, V = table.store()
    aux, tiles_q, tiles_k = pt.fasttree_plan(artifact["fasttree"], table, case)
    kv_e, kv_off, kv_len, q_e, q_off, q_len, r2v, r2v_off, r2v_len = aux[:9]
    q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)
    mid_o = torch.full((len(q_e), case.q_heads, case.head_dim), float("nan"), dtype=torch.float64)
    mid_lse = torch.full((len(q_e), case.q_heads), float("nan"), dtype=torch.float64)
    assert sum(aux[11]) == len(kv_off) and max(q_len.tolist()) <= max(tiles_q)
    for vn in range(len(kv_off)):
        rows = q_e[q_off[vn]: q_off[vn] + q_len[vn]].long()
        kv = kv_e[kv_off[vn]: kv_off[vn] + kv_len[vn]].long()
        mid_o[q_off[vn]: q_off[vn] + q_len[vn]], mid_lse[q_off[vn]: q_off[vn] + q_len[vn]] = _partials(q[rows], K, V, kv)
    out = _merge(mid_o, mid_lse, r2v, r2v_off, r2v_len, case.batch)
    ref = reference_rows(case, inp, list(range(case.batch)))
    assert rel_err(out, ref) < 1e-10


@pytest.mark.parametrize("case", TABLE_CASES, ids=lambda c: c.label())
def test_deft_plan_executes_to_exact_attention(artifact, case):
    inp = make_inputs(case, "cpu", seed=6)
    table = pt.node_table(case, inp)
    K, V = table.store()
    aux = pt.deft_plan(artifact["deft"], table, case)
    kv_e, kv_off, kv_len, q_e, q_off, q_len, mask, mask_off, r2v, r2v_off, r2v_len = aux[:11]
    q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)
    mid_o = torch.full((len(q_e), case.q_heads, case.head_dim), float("nan"), dtype=torch.float64)
    mid_lse = torch.full((len(q_e), case.q_heads), float("nan"), dtype=torch.float64)
    for s in range(len(kv_off)):
        n, L = int(q_len[s]), int(kv_len[s])
        rows = q_e[q_off[s]: q_off[s] + n].long()
        kv = kv_e[kv_off[s]: kv_off[s] + L].long()
        bits = [[(int(mask[mask_off[s] + L * (j // pt.DEFT_MASK) + t]) >> (j % pt.DEFT_MASK)) & 1 for t in range(L)]
                for j in range(n)]
        allow = torch.tensor(bits, dtype=torch.bool).reshape(n, L)
        assert allow.any(1).all()  # every query of a subtree sees some of its tokens
        mid_o[q_off[s]: q_off[s] + n], mid_lse[q_off[s]: q_off[s] + n] = _partials(q[rows], K, V, kv, allow)
    out = _merge(mid_o, mid_lse, r2v, r2v_off, r2v_len, case.batch)
    ref = reference_rows(case, inp, list(range(case.batch)))
    assert rel_err(out, ref) < 1e-10


def _paged_tokens(pool, pages, last, ps):
    """K and V ``(n, Hkv, D)`` of a page list whose last page holds ``last`` tokens (NHD pool (pages, 2, ps, H, D))."""
    rows = [pool[p] for p in pages]
    kv = torch.cat([r[:, : (last if i == len(rows) - 1 else ps)] for i, r in enumerate(rows)], 1)
    return kv[0], kv[1]


@pytest.mark.parametrize("case", LEVEL_CASES + [tree_case(s) for s in SPECS.values()], ids=lambda c: c.label())
def test_decode_pool_holds_every_sequence(case):
    """flashinfer_decode's paged cache and page table, read back page by page, give exact attention."""
    inp = make_inputs(case, "cpu", seed=8)
    table = pt.node_table(case, inp, rooted=False)
    q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)
    ref = reference_rows(case, inp, list(range(case.batch)))
    for ps in sorted({1, pt.decode_page_size(table)}):
        pool, indptr, indices, last = pt.decode_pool(table, ps)
        outs = []
        for b in range(case.batch):
            k, v = _paged_tokens(pool, indices[indptr[b]: indptr[b + 1]], last[b], ps)
            outs.append(_attend(q[b], k, v))
        assert rel_err(torch.stack(outs), ref) < 1e-10, ps


@pytest.mark.parametrize("name", ["uneven", "regular"])
def test_cascade_tree_levels_merge_to_exact_attention(name):
    """flashinfer_cascade's per-depth levels of a tree (query segments = the leaves under each node, its pages with a
    partial last page), attended level by level and merged by LSE, give exact attention."""
    from tkprefix.bench.peers import FlashInferCascade

    case = tree_case(SPECS[name])
    if name == "regular":  # force the per-depth layout on a tree that also has a level form
        case = Case("t", case.batch, case.q_heads, case.kv_heads, case.head_dim, (), 0, dtype=case.dtype,
                    tree=case.tree)
    impl = FlashInferCascade()
    assert impl._by_depth(case)
    inp = make_inputs(tree_case(SPECS[name]), "cpu", seed=9)
    ps = impl.page_size
    pool = torch.zeros(impl._pages(case), 2, ps, case.kv_heads, case.head_dim)
    qo, kvp, idx, last = impl._tree_layout(case, inp, pool)
    assert len(qo) == case.tree.depth
    q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)
    o = torch.zeros(case.batch, case.q_heads, case.head_dim, dtype=torch.float64)
    lse = torch.full((case.batch, case.q_heads), float("-inf"), dtype=torch.float64)
    for lq, lp, li, ll in zip(qo, kvp, idx, last):
        assert lq[0] == 0 and lq[-1] == case.batch  # every level holds every query
        for s in range(len(lq) - 1):
            k, v = _paged_tokens(pool, li[lp[s]: lp[s + 1]].tolist(), int(ll[s]), ps)
            for b in range(int(lq[s]), int(lq[s + 1])):
                ob, lb = _partials(q[b][None], k, v, torch.arange(k.shape[0]))
                new = torch.logaddexp(lse[b], lb[0])
                o[b] = o[b] * torch.exp(lse[b] - new)[:, None] + ob[0] * torch.exp(lb[0] - new)[:, None]
                lse[b] = new
    assert rel_err(o, reference_rows(case, inp, list(range(case.batch)))) < 1e-10


def test_runner_rows_of_tree_attention(monkeypatch):
    """The whole run_case path on a tree case (device-only steps stood in for): torch_tree gives a validated ok row
    with the ideal sharing; tk_tree an 'unavailable' row naming why (no TK backend on this machine)."""
    from tkprefix.bench import inputs, runner, schema

    monkeypatch.setattr(runner, "make_inputs", lambda case, dev, seed=0: inputs.make_inputs(case, "cpu", seed=seed))
    monkeypatch.setattr(runner, "_poison_allocator", lambda *a: None)
    monkeypatch.setattr(runner, "estimate_us", lambda fn: 1.0)
    monkeypatch.setattr(runner, "time_interleaved", lambda rs, n, fl: {k: [5.0 + i for i in range(n)] for k in rs})
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (1 << 40, 1 << 40))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    case = tree_case(SPECS["uneven"], dtype="bfloat16")
    rows = runner.run_case(case, ["torch_tree", "tk_tree"], [False], None,
                           {"copy_bw_bytes_per_s": 3e12, "gemm_flops_per_s": 7e14}, log=print, reps=10)
    ok, tk = rows
    assert ok["status"] == "ok" and ok["rel_err"] < 1e-2, ok
    assert ok["kv_tokens_read"] == case.tree.unique_tokens
    assert tk["status"].startswith("unavailable: TK backend unavailable"), tk
    for r in rows:
        schema.validate_row(r)
