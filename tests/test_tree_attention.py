"""tree_attention and its planner (issue 13) on the CPU: random trees against a float64 reference of each leaf's
root-to-leaf attention, ideal sharing of the work list, poisoned partials, bad input."""
import dataclasses
import doctest
import importlib
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tkprefix import CostModel, PagedTree, plan_tree, tree_attention
from tkprefix.bench.trees import Tree, generate
from tkprefix.reference import naive_attention
from tkprefix.tk_tree import consumers_for
from tkprefix.tree_attention import tree_attention_torch
from tkprefix.tree_plan import tree_shape

TOL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
SPLIT_HARD = CostModel(n_sm=4, kv_tile=16, min_piece_tiles=1, decode_rows=0)  # splits every chain over a 16-token tile
DECODE_ALL = CostModel(decode_rows=1 << 20, decode_piece_tokens=64)  # every item a decode item, pieces of 64 tokens


def preorder_parents(depths):
    """Parents of the preorder tree whose node depths are `depths` (d[0] = 0, 1 <= d[i] <= d[i-1] + 1)."""
    parents, last_at = [-1], [0]
    for d in depths[1:]:
        parents.append(last_at[d - 1])
        last_at[d:] = [len(parents) - 1]
    return parents


@st.composite
def cases(draw):
    n = draw(st.integers(1, 40))
    depths = [0]
    for _ in range(n - 1):
        depths.append(draw(st.integers(1, min(depths[-1] + 1, 9))))  # at most 10 levels
    lengths = draw(st.lists(st.one_of(st.just(1), st.integers(1, 300)), min_size=n, max_size=n))
    return dict(parents=preorder_parents(depths), lengths=lengths, kv_heads=draw(st.integers(1, 2)),
                group=draw(st.sampled_from([1, 2, 3, 8])), page_size=draw(st.sampled_from([1, 3, 16, 64])),
                packed=draw(st.booleans()), dtype=draw(st.sampled_from(list(TOL))),
                cost=draw(st.sampled_from([None, SPLIT_HARD, DECODE_ALL])), seed=draw(st.integers(0, 2**31 - 1)))


def build(parents, lengths, kv_heads=2, group=2, page_size=16, packed=True, dtype=torch.float32, seed=0, dim=16):
    """The tree in a shuffled paged pool, its true per-node K/V (float64) and q."""
    gen = torch.Generator().manual_seed(seed)
    ks = [torch.randn(n, kv_heads, dim, generator=gen, dtype=torch.float64).to(dtype) for n in lengths]
    vs = [torch.randn(n, kv_heads, dim, generator=gen, dtype=torch.float64).to(dtype) for n in lengths]
    probe = PagedTree.from_nodes(parents, ks, vs, page_size=page_size, packed=packed)
    perm = np.random.default_rng(seed).permutation(probe.k_pool.shape[0])
    tree = PagedTree.from_nodes(parents, ks, vs, page_size=page_size, packed=packed, page_perm=perm)
    q = torch.randn(tree.n_leaves, kv_heads * group, dim, generator=gen, dtype=torch.float64).to(dtype)
    return tree, ks, vs, q


def leaf_paths(parents):
    children = {p for p in parents[1:]}
    paths = []
    for leaf in (i for i in range(len(parents)) if i not in children):
        path = [leaf]
        while parents[path[-1]] >= 0:
            path.append(parents[path[-1]])
        paths.append(path[::-1])
    return paths


def reference(parents, ks, vs, q):
    paths = leaf_paths(parents)
    keys = [torch.cat([ks[i] for i in p]) for p in paths]
    values = [torch.cat([vs[i] for i in p]) for p in paths]
    return naive_attention(q[:, None], keys, values)[:, 0]


def check(parents, lengths, cost=None, **kw):
    tree, ks, vs, q = build(parents, lengths, **kw)
    out = tree_attention(q, tree, backend="torch", cost=cost)
    assert out.dtype == q.dtype and out.shape == q.shape
    assert not out.isnan().any()
    torch.testing.assert_close(out.double(), reference(parents, ks, vs, q), atol=TOL[q.dtype], rtol=0)
    return tree


@settings(max_examples=30)
@given(cases())
def test_random_trees_match_float64(case):
    check(case["parents"], case["lengths"], cost=case["cost"], kv_heads=case["kv_heads"], group=case["group"],
          page_size=case["page_size"], packed=case["packed"], dtype=case["dtype"], seed=case["seed"])


GENERATED_SPECS = [  # generator trees checked here and, on the GPU, by tests/gpu/test_tk_tree.py
    {"fanout": [64], "lengths": [300, [1, 9]], "seed": 1},  # fan-out 64
    {"fanout": [2] * 9, "lengths": [5, 1, 3, 1, 1, 2, 1, 1, 1, 1], "seed": 3},  # 10 levels, 512 leaves
    {"fanout": [[2, 5], [1, 4], [1, 3]], "lengths": [[100, 299], [1, 64], [1, 64], [1, 33]], "prune": 0.3,
     "seed": 5},  # uneven depth and fan-out, chains of single children
]


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("spec", GENERATED_SPECS)
def test_generated_trees(spec, dtype):
    t = generate(spec)
    check(list(t.parents), list(t.lengths), kv_heads=2, group=4, page_size=16, dtype=dtype, seed=7)


@pytest.mark.parametrize("packed", [True, False])
def test_long_chain_is_split_and_merged_exactly(packed):
    """A 10-node chain over one leaf is one chain item; the cost model cuts it into pieces across node borders."""
    tree = check(list(range(-1, 9)), [1, 37, 2, 64, 1, 99, 3, 1, 50, 7], cost=SPLIT_HARD, group=1, packed=packed)
    plan = tree.plan(2, SPLIT_HARD)
    assert plan.n_items > 1 and plan.n_segs > plan.n_items and plan.max_leaf_partials == plan.n_items
    tokens = np.add.reduceat(plan.host["seg_len"], plan.host["item_seg_offset"][:-1])
    assert tokens.sum() == 265 and (tokens % 16 != 0).sum() <= 1, "pieces are cut at kv-tile multiples"


def test_leaves_are_decode_items_cut_into_pieces():
    """Items of at most decode_rows stacked rows come last (the decode kernel's), long ones cut into
    decode_piece_tokens pieces; the MMA items' balanced share ignores them; the result is still exact."""
    parents, lengths = [-1, 0, 0, 0], [700, 300, 5, 1]  # a root of 6 stacked rows over three leaves of 2
    cost = CostModel(decode_rows=4, decode_piece_tokens=128)
    tree = check(parents, lengths, cost=cost, kv_heads=2, group=2)
    plan = tree.plan(4, cost)
    h = plan.host
    stacked = (h["item_row_end"] - h["item_row_start"]) * plan.group
    assert plan.n_mma_items >= 1 and (stacked[:plan.n_mma_items] == 6).all() and (stacked[plan.n_mma_items:] == 2).all()
    tokens = np.add.reduceat(h["seg_len"], h["item_seg_offset"][:-1])[plan.n_mma_items:]
    assert sorted(tokens.tolist()) == [1, 5, 44, 128, 128], "leaf 300 = 128 + 128 + 44 (kv-tile multiples)"
    assert plan.max_mma_rows == 3 and plan.max_item_rows == 3


def test_short_nodes_over_many_leaves_are_decode_items():
    """A short chain over more than decode_rows rows goes to the decode kernel when ceil(rows / 2) * tokens is at most
    decode_short_work (a 16-token node over 32 leaves: 256); a long one over the same rows stays an MMA item."""
    parents = [-1, 0, 1] + [2] * 32 + [0] + [35] * 32  # root -> a 15 + 1-token chain over 32 leaves; a 200-token node
    lengths = [40, 15, 1] + [3] * 32 + [200] + [2] * 32
    cost = CostModel(decode_rows=8, decode_short_work=256)
    tree = check(parents, lengths, cost=cost, kv_heads=1, group=1)
    h = tree.plan(1, cost).host
    rows = h["item_row_end"] - h["item_row_start"]
    tokens = np.add.reduceat(h["seg_len"], h["item_seg_offset"][:-1])
    n_mma = tree.plan(1, cost).n_mma_items
    assert sorted(zip(rows[:n_mma].tolist(), tokens[:n_mma].tolist())) == [(32, 200), (64, 40)]
    assert (32, 16) in zip(rows[n_mma:].tolist(), tokens[n_mma:].tolist()), "the 16-token chain over 32 leaves"
    assert tree.plan(1, CostModel(decode_short_work=0)).n_mma_items == 3
    with pytest.raises(ValueError, match=r"CostModel.decode_short_work must be an int >= 0"):
        CostModel(decode_short_work=-1)


def test_split_fills_one_wave_of_resident_blocks():
    """A 4,000-token root over 10 leaves at 32 kv-heads (c8's long10): the wgmma kernel holds two one-warpgroup
    blocks per SM, so 132 SMs take 264 units: 8 pieces x 32 heads, not more (a second, mostly idle wave); with the
    default pieces of at least 8 tiles, 63 tiles make 7."""
    ks = [torch.randn(n, 32, 8) for n in [4000] + [400] * 10]
    tree = PagedTree.from_nodes([-1] + [0] * 10, ks, ks, page_size=16)
    plan = tree.plan(32, CostModel(min_piece_tiles=4))
    assert plan.n_mma_items == 8 and plan.max_mma_rows == 10
    assert tree.plan(32).n_mma_items == 7, "min_piece_tiles 8: 63 tiles // 8"
    assert tree.plan(32, CostModel(small_blocks_per_sm=1)).n_mma_items == 4, "one block per SM: 4 x 32 <= 132"
    with pytest.raises(ValueError, match=r"CostModel.small_blocks_per_sm must be a positive int"):
        CostModel(small_blocks_per_sm=0)


def test_wgmma_grid_is_capped_beside_the_decode_kernel():
    """Two waves of MMA units (of two warpgroups) with decode items beside them: the wgmma grid takes
    CostModel.mma_share of the resident blocks (2 SMs here: 1); not without decode items, with less than two waves,
    with mma_share 1, or with one-warpgroup blocks."""
    ks = [torch.randn(n, 2, 8) for n in [300] + [40] * 300]  # a root over 300 leaves: 3 passes x 2 kv-heads
    tree = PagedTree.from_nodes([-1] + [0] * 300, ks, ks, page_size=16)
    long = dict(short_unit_tiles=0)  # the root's 5 KV tiles count as long units: two warpgroups a block
    plan = tree.plan(2, CostModel(n_sm=2, **long))
    assert 0 < plan.n_mma_items < plan.n_items and plan.n_mma_units == 6 and plan.mma_blocks == 1
    assert plan.consumers == 2
    assert tree.plan(2, CostModel(n_sm=3, **long)).mma_blocks == 2, "round(3 x 0.73)"
    assert tree.plan(2, CostModel(n_sm=4, **long)).mma_blocks == 0, "6 units < two waves of 4"
    assert tree.plan(2, CostModel(n_sm=2, decode_rows=0, **long)).mma_blocks == 0, "no decode kernel beside it"
    assert tree.plan(2, CostModel(n_sm=2, mma_share=1.0, **long)).mma_blocks == 0
    assert tree.plan(2, CostModel(n_sm=2)).mma_blocks == 0, "5 tiles: short units, one warpgroup a block"
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match=r"CostModel.mma_share must be in \(0, 1\]"):
            CostModel(mma_share=bad)


def test_short_units_run_one_warpgroup_a_block():
    """A root over 300 leaves (300 stacked rows: more than one 64-row tile): one warpgroup a block (two an SM) while
    the cost-weighted mean KV tiles of the MMA chains is at most short_unit_tiles, else two; a plan of only
    64-row items always one."""
    for root, want in ((16 * 64, 1), (17 * 64, 2)):  # 16 and 17 tiles
        ks = [torch.randn(n, 1, 8) for n in [root] + [40] * 300]
        tree = PagedTree.from_nodes([-1] + [0] * 300, ks, ks, page_size=16)
        assert tree.plan(1).consumers == want
        assert consumers_for(tree.plan(1)) == want
    ks = [torch.randn(n, 1, 8) for n in [5000, 40, 40]]
    assert PagedTree.from_nodes([-1, 0, 0], ks, ks).plan(8).consumers == 1, "16 stacked rows: one tile"
    with pytest.raises(ValueError, match=r"CostModel.short_unit_tiles must be an int >= 0"):
        CostModel(short_unit_tiles=-1)


def address_sets(tree, plan):
    """Per item, the physical (page, slot) of every token it reads (from the work list alone)."""
    h, P = plan.host, tree.page_size
    out = []
    for i in range(plan.n_items):
        addrs = []
        for s in range(h["item_seg_offset"][i], h["item_seg_offset"][i + 1]):
            pos = h["seg_slot"][s] + np.arange(h["seg_len"][s])
            addrs += zip(h["page_table"][h["seg_page"][s] + pos // P].tolist(), (pos % P).tolist())
        out.append(addrs)
    return out


@settings(max_examples=30)
@given(cases())
def test_plan_reads_every_token_once_per_kv_head(case):
    """Ideal sharing: the work list names each pool token of the tree exactly once, and each leaf's items read
    exactly its path (so sharing = path tokens / unique tokens)."""
    tree, *_ = build(case["parents"], case["lengths"], page_size=case["page_size"], packed=case["packed"])
    plan = tree.plan(2 * case["group"], case["cost"])
    items = address_sets(tree, plan)
    flat = [a for addrs in items for a in addrs]
    assert plan.kv_tokens_read == len(flat) == len(set(flat)) == tree.unique_tokens == sum(case["lengths"])
    h = plan.host
    path_lens = [sum(case["lengths"][i] for i in p) for p in leaf_paths(case["parents"])]
    for r, want in enumerate(path_lens):
        mine = [i for i in range(plan.n_items) if h["item_row_start"][i] <= r < h["item_row_end"][i]]
        assert sum(len(items[i]) for i in mine) == want
        merged = h["leaf_partial_index"][h["leaf_partial_offset"][r]:h["leaf_partial_offset"][r + 1]]
        assert sorted(merged.tolist()) == sorted(h["item_partial_offset"][i] + r - h["item_row_start"][i]
                                                 for i in mine)
    model = case["cost"] or CostModel()
    tokens = np.array([len(a) for a in items])
    stacked = (h["item_row_end"] - h["item_row_start"]) * plan.group
    mma = slice(0, plan.n_mma_items)
    dec = slice(plan.n_mma_items, plan.n_items)
    assert (stacked[mma] > model.decode_rows).all() and model.is_decode(tokens[dec], stacked[dec]).all()
    assert (tokens[dec] <= model.decode_piece_tokens).all() or model.decode_piece_tokens % model.kv_tile
    unit_rows = np.minimum(stacked[mma], model.rows_per_pass)  # an MMA item's cost: its row pass's, a unit's
    assert (np.diff(model.cost(tokens[mma], unit_rows)) <= 0).all(), "MMA items in descending cost of a row pass"
    assert (np.diff(model.cost(tokens[dec], stacked[dec])) <= 0).all(), "decode items in descending cost"
    # the wgmma kernel's units: every (MMA item, kv-head, stacked row) once, in passes of at most rows_per_pass rows,
    # by item, then kv-head, then rows
    units = h["mma_units"]
    assert units.shape == (plan.n_mma_units, 4) and plan.mma_units.dtype == torch.int32
    assert (units[:, 2] < units[:, 3]).all() and (units[:, 3] - units[:, 2] <= model.rows_per_pass).all()
    assert [tuple(u[:3]) for u in units] == sorted(tuple(u[:3]) for u in units)
    covered = Counter((i, kvh, e) for i, kvh, r0, r1 in units.tolist() for e in range(r0, r1))
    want = {(i, kvh, e) for i in range(plan.n_mma_items) for kvh in range(tree.kv_heads) for e in range(stacked[i])}
    assert set(covered) == want and set(covered.values()) <= {1}
    assert plan.max_mma_rows == (int((h["item_row_end"] - h["item_row_start"])[mma].max()) if plan.n_mma_items else 0)
    assert all(t.dtype == torch.int32 for t in (plan.seg_page, plan.leaf_partial_index, plan.item_seg_offset))


@settings(max_examples=20)
@given(cases())
def test_tree_shape_matches_the_generator_tree(case):
    t, shape = Tree(tuple(case["parents"]), tuple(case["lengths"])), tree_shape(case["parents"])
    assert shape["depth"].tolist() == list(t.depth_of)
    assert shape["leaves"].tolist() == list(t.leaves)
    assert list(zip(shape["leaf_lo"].tolist(), shape["leaf_hi"].tolist())) == list(t.leaf_range)


def test_unwritten_partial_rows_poison_their_leaves():
    """Drop the last item from the plan: exactly the leaves under it come out NaN (the check above fails on them)."""
    tree, ks, vs, q = build([-1, 0, 1, 1, 0], [40, 3, 1, 5, 2])
    plan = tree.plan(q.shape[1])
    short = dataclasses.replace(plan, n_items=plan.n_items - 1)
    out = tree_attention_torch(q, tree, short)
    lost = range(plan.host["item_row_start"][-1], plan.host["item_row_end"][-1])
    assert [r for r in range(tree.n_leaves) if out[r].isnan().any()] == list(lost)


def test_plan_is_built_once_per_tree():
    tree, _, _, q = build([-1, 0, 0], [10, 1, 2])
    tree_attention(q, tree, backend="torch")
    first = tree.plan(q.shape[1])
    tree_attention(q, tree, backend="torch")
    assert tree.plan(q.shape[1]) is first and tree.plan(q.shape[1], SPLIT_HARD) is not first


def test_doctest():
    failures = doctest.testmod(importlib.import_module("tkprefix.tree_attention"), optionflags=doctest.ELLIPSIS).failed
    assert failures == 0


def pools(n_pages=4, heads=2, page=4, dim=8):
    return torch.zeros(n_pages, heads, page, dim), torch.zeros(n_pages, heads, page, dim)


@pytest.mark.parametrize("args, error, match", [
    (dict(parents=[0, 0]), ValueError, r"parents: node 0 must be the root"),
    (dict(parents=[-1, 2, 0]), ValueError, r"parents\[1\] must be an earlier node"),
    (dict(parents=[-1, 0, 1, 0, 2]), ValueError, r"parents\[4\] = 2: nodes must be numbered in depth-first preorder"),
    (dict(parents=[[-1]]), TypeError, r"parents must be a 1-D sequence of ints"),
    (dict(lengths=[3, 0, 1]), ValueError, r"lengths\[1\]: a node holds at least one token"),
    (dict(first_slot=[0, 4, 0]), ValueError, r"first_slot\[1\] must lie in \[0, page_size=4\)"),
    (dict(node_page_offset=[0, 2, 2, 3]), ValueError, r"node_page_offset must be a CSR over page_table"),
    (dict(page_table=[0, 1, 9]), ValueError, r"page_table entries must be page ids in \[0, n_pages=4\)"),
    (dict(lengths=[3, 1]), ValueError, r"lengths must hold 3 entries"),
    (dict(v_pool=torch.zeros(4, 2, 4, 4)), ValueError, r"v_pool must match k_pool"),
    (dict(k_pool=torch.zeros(4, 2, 4)), ValueError, r"k_pool must have 4 dimensions"),
])
def test_bad_trees(args, error, match):
    k, v = pools()
    base = dict(parents=[-1, 0, 0], lengths=[3, 1, 2], page_table=[0, 1, 2], node_page_offset=[0, 1, 2, 3],
                first_slot=[0, 0, 0], k_pool=k, v_pool=v)
    with pytest.raises(error, match=match):
        PagedTree(**{**base, **args})


def test_bad_from_nodes():
    ks = [torch.zeros(3, 2, 8), torch.zeros(1, 2, 8)]
    with pytest.raises(ValueError, match="page_size must be a positive int"):
        PagedTree.from_nodes([-1, 0], ks, ks, page_size=0)
    with pytest.raises(ValueError, match="page_perm must be a permutation of range"):
        PagedTree.from_nodes([-1, 0], ks, ks, page_size=2, page_perm=[0, 0])
    with pytest.raises(ValueError, match="node_ks and node_vs need one tensor per node"):
        PagedTree.from_nodes([-1, 0], ks, ks[:1])
    with pytest.raises(ValueError, match=r"node_vs\[1\] must match node_ks\[1\]"):
        PagedTree.from_nodes([-1, 0], ks, [ks[0], torch.zeros(2, 2, 8)])
    with pytest.raises(ValueError, match=r"lengths\[1\]: a node holds at least one token"):
        PagedTree.from_nodes([-1, 0], [ks[0], ks[1][:0]], [ks[0], ks[1][:0]])
    with pytest.raises(ValueError, match=r"CostModel.kv_tile must be a positive int"):
        CostModel(kv_tile=0)


def test_tree_arrays_are_frozen():
    tree, *_ = build([-1, 0, 0], [10, 1, 2])
    with pytest.raises(ValueError, match="read-only"):
        tree.lengths[0] = 3


@pytest.mark.parametrize("change, error, match", [
    (dict(q=torch.zeros(2, 4)), ValueError, r"q must have 3 dimensions"),
    (dict(q=torch.zeros(3, 4, 16)), ValueError, r"q.shape\[0\] \(n_leaves: one query row per leaf"),
    (dict(q=torch.zeros(2, 4, 8)), ValueError, r"q.shape\[2\] \(head_dim"),
    (dict(q=torch.zeros(2, 3, 16)), ValueError, r"q has 3 heads, which must be a multiple of tree's 2 kv-heads"),
    (dict(q=torch.zeros(2, 4, 16, dtype=torch.float16)), TypeError, r"q must have the tree's dtype torch.float32"),
    (dict(q=torch.zeros(2, 4, 16, dtype=torch.int32)), TypeError, r"q must have dtype in"),
    (dict(tree="tree"), TypeError, r"tree must be a PagedTree, got str"),
    (dict(backend="cuda"), ValueError, r"backend must be one of \('auto', 'torch', 'tk'\)"),
    (dict(cost=3), TypeError, r"cost must be a CostModel or None"),
    (dict(backend="tk"), ValueError, r"backend='tk' needs CUDA tensors on a Hopper GPU \(sm_90\), got q on cpu"),
])
def test_bad_calls(change, error, match):
    tree, _, _, q = build([-1, 0, 0], [10, 1, 2])
    args = {"q": q, "tree": tree, "backend": "torch", "cost": None, **change}
    with pytest.raises(error, match=match):
        tree_attention(args["q"], args["tree"], backend=args["backend"], cost=args["cost"])


def test_bad_plan_arguments():
    tree, *_ = build([-1, 0, 0], [10, 1, 2])
    with pytest.raises(ValueError, match=r"q_heads must be a positive multiple of the tree's 2 kv-heads, got 3"):
        plan_tree(tree, 3)
    with pytest.raises(TypeError, match="tree must be a PagedTree"):
        plan_tree([-1, 0], 2)
