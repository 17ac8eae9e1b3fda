"""TK tree attention (kernels/tree, tkprefix.tk_tree) against a float64 oracle on random trees: GPU only.

Both kernels (the wgmma one and the decode one, kernels/tree/; items on either, or both on two streams) and the
merge. Skipped with the reason
without an sm_90 GPU and an extension holding the tree family (`gpu` marker).

Covered: random preorder trees of depth 1-10, node lengths 1, odd and up to 300, fan-out up to 600 leaves, and one
root of 8,191 tokens over 1,024 leaves; GQA 1-8 with 1-2 kv-heads; bf16 and fp16; head_dim 128 and 64; page sizes 1,
3, 16, 64, packed (nodes share pages, start and end inside pages) and page-aligned, pages shuffled; chains split
across node borders by a cost model; 1 and 2 consumer warpgroups and items of thousands of stacked rows (row-block
loop); leaves merging up to 67 partial rows; grids of 1 and 7 persistent blocks; partial and output buffers poisoned
with NaN, and NaN in every pool slot the tree does not own; CUDA-graph replay; bad input.

Run (GPU session), then the sanitizers on the small cases::

    pytest -q -p no:cacheprovider tests/gpu/test_tk_tree.py
    compute-sanitizer --tool memcheck  python -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k sanitizer
    compute-sanitizer --tool racecheck python -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k sanitizer
    compute-sanitizer --tool synccheck python -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k sanitizer
    compute-sanitizer --tool initcheck python -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k sanitizer
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tk_family import gpu_mark
from test_tree_attention import DECODE_ALL, GENERATED_SPECS, SPLIT_HARD, leaf_paths, preorder_parents
from tkprefix import CostModel, PagedTree, tk_tree, tree_attention
from tkprefix.bench.trees import generate
from tkprefix.reference import attention_with_lse

TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}  # relative Frobenius error of o


gpu = gpu_mark("TK tree kernels", tk_tree.ops)


def make(parents, lengths, kv_heads=2, group=2, page_size=16, packed=True, dtype=torch.bfloat16, dim=128, seed=0,
         nan_free_slots=True):
    """The tree in a shuffled paged pool on the GPU (every slot no node owns holds NaN), its float64 per-node K/V, q."""
    gen = torch.Generator().manual_seed(seed)
    ks = [torch.randn(n, kv_heads, dim, generator=gen, dtype=torch.float64).to(dtype) for n in lengths]
    vs = [torch.randn(n, kv_heads, dim, generator=gen, dtype=torch.float64).to(dtype) for n in lengths]
    probe = PagedTree.from_nodes(parents, ks, vs, page_size=page_size, packed=packed)
    perm = np.random.default_rng(seed).permutation(probe.k_pool.shape[0])
    cpu = PagedTree.from_nodes(parents, ks, vs, page_size=page_size, packed=packed, page_perm=perm)
    k_pool, v_pool = cpu.k_pool.clone(), cpu.v_pool.clone()
    if nan_free_slots:  # a slot outside every node holds NaN: the kernel must never let it reach o
        owned = torch.zeros(k_pool.shape[0], page_size, dtype=torch.bool)
        for i, n in enumerate(cpu.lengths):
            pos = cpu.first_slot[i] + np.arange(n)
            pages = cpu.page_table[cpu.node_page_offset[i] + pos // page_size]
            owned[torch.from_numpy(pages), torch.from_numpy(pos % page_size)] = True
        for pool in (k_pool, v_pool):
            pool.transpose(1, 2)[~owned] = float("nan")
    tree = PagedTree(cpu.parents, cpu.lengths, cpu.page_table, cpu.node_page_offset, cpu.first_slot,
                     k_pool.cuda(), v_pool.cuda())
    q = torch.randn(tree.n_leaves, kv_heads * group, dim, generator=gen, dtype=torch.float64).to(dtype).cuda()
    return tree, ks, vs, q


def oracle(parents, ks, vs, q):
    """float64 attention of each leaf's query over its root-to-leaf K/V: o (n_leaves, Hq, D), lse (n_leaves, Hq)."""
    outs, lses = [], []
    for r, path in enumerate(leaf_paths(list(parents))):
        k = torch.cat([ks[i] for i in path]).double()[None]
        v = torch.cat([vs[i] for i in path]).double()[None]
        o, lse = attention_with_lse(q[r : r + 1].double().cpu()[None], k, v)
        outs.append(o[0, 0])
        lses.append(lse[0, 0])
    return torch.stack(outs), torch.stack(lses)


def run_checked(parents, lengths, cost=None, consumers=None, max_blocks=0, overlap=True, **kw):
    tree, ks, vs, q = make(parents, lengths, **kw)
    plan = tree.plan(q.shape[1], cost)
    o, lse = tk_tree.tree_attention(q, tree, plan, return_lse=True, consumers=consumers, max_blocks=max_blocks,
                                    poison=float("nan"), overlap=overlap)
    torch.cuda.synchronize()
    ref_o, ref_lse = oracle(parents, ks, vs, q)
    assert o.shape == q.shape and o.dtype == q.dtype
    assert torch.isfinite(o).all(), "an output row was not written (poison survived), or NaN leaked from the pool"
    err = float((o.double().cpu() - ref_o).norm() / ref_o.norm())
    assert err < TOL[q.dtype], f"rel err {err}"
    assert (lse.double().cpu() - ref_lse).abs().max() < 1e-2
    return tree, plan, q, err


def random_case(rng: random.Random):
    n = rng.randint(1, 60)
    depths = [0]
    for _ in range(n - 1):
        depths.append(rng.randint(1, min(depths[-1] + 1, 9)))  # at most 10 levels
    lengths = [rng.choice([1, 1, rng.randrange(1, 64, 2), rng.randint(1, 300)]) for _ in range(n)]
    return preorder_parents(depths), lengths


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dim", [128, 64])
@pytest.mark.parametrize("seed", range(8))
def test_random_trees(seed, dim, dtype):
    rng = random.Random(2000 + seed)
    parents, lengths = random_case(rng)
    kv_heads, group = rng.choice([(1, 1), (2, 1), (1, 2), (2, 3), (2, 4), (1, 8), (4, 8)])
    _, plan, _, err = run_checked(parents, lengths, cost=rng.choice([None, SPLIT_HARD, DECODE_ALL]), kv_heads=kv_heads,
                                  group=group, page_size=rng.choice([1, 3, 16, 64]), packed=rng.random() < 0.7,
                                  dtype=dtype, dim=dim, seed=seed, consumers=rng.choice([None, 1, 2]),
                                  max_blocks=rng.choice([0, 0, 1, 7]), overlap=rng.random() < 0.7)
    print(f"seed={seed} d={dim} {dtype} nodes={len(parents)} items={plan.n_items} segs={plan.n_segs} err={err:.2e}")


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("spec", GENERATED_SPECS)
def test_generated_trees(spec, dtype):
    t = generate(spec)
    run_checked(list(t.parents), list(t.lengths), kv_heads=2, group=4, page_size=16, dtype=dtype, seed=7)


@gpu
@pytest.mark.parametrize("consumers", [1, 2])
def test_wide_item_loops_over_row_blocks(consumers):
    """600 leaves x 8 q-heads under one 200-token root: one item of 4,800 stacked rows (38 or 75 row blocks)."""
    parents = [-1] + [0] * 600
    lengths = [200] + [1 + i % 5 for i in range(600)]
    _, plan, _, _ = run_checked(parents, lengths, kv_heads=1, group=8, page_size=16, consumers=consumers, seed=11)
    assert plan.max_item_rows * plan.group == 4800


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_issue_extremes_fanout_1024_under_an_8191_token_node(dtype):
    """The largest fan-out and node length issue 13 names: 1,024 leaves (odd lengths 1-13) under one 8,191-token
    root (odd, so it ends inside a page), GQA 1 at D 64 (keeps the float64 oracle's 1,024 paths small): the root is
    split into 16 KV pieces on the wgmma kernel, each over 1,024 stacked rows (8 row-pass units), the leaves are decode
    items."""
    parents = [-1] + [0] * 1024
    lengths = [8191] + [1 + i % 13 for i in range(1024)]
    _, plan, _, _ = run_checked(parents, lengths, kv_heads=1, group=1, page_size=16, dtype=dtype, dim=64, seed=13)
    assert plan.n_mma_items > 1 and plan.max_mma_rows == 1024 and plan.n_items > plan.n_mma_items


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dim", [128, 64])
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 9])
def test_decode_kernel_row_groups_and_odd_lengths(rows, dim, dtype):
    """Every item on the decode kernel (DECODE_ALL): 1-9 stacked rows per item (row groups of 2, the last one
    partial), token counts 1 and odd, pieces of 64 tokens crossing node and page borders, page size 3."""
    parents = preorder_parents([0, 1, 2, 2, 1, 2] + [1] * rows)  # = [-1, 0, 1, 1, 0, 4] + [0] * rows
    lengths = [131, 1, 7, 64, 3, 257] + [1 + 2 * i for i in range(rows)]
    _, plan, _, _ = run_checked(parents, lengths, cost=DECODE_ALL,
                                kv_heads=2, group=1 + rows % 3, page_size=3, dtype=dtype, dim=dim, seed=rows)
    assert plan.n_mma_items == 0 and plan.n_items > len(parents)


@gpu
@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dim", [128, 64])
def test_short_items_hold_their_kv_in_registers(dim, dtype, group):
    """Decode items of at most 16 (D 128) or 32 (D 64) tokens over more than 2 stacked rows load their KV once and
    loop over the rows (tree_decode.cuh, decode_rows_over_held_kv): a chain of 1 + 2 + (limit - 4) tokens (three
    segments) over every leaf, nodes of exactly the limit and one more, a 1-token node, leaves of 1-7 tokens; page
    size 3, so tokens cross pages; 12 leaves x group stacked rows at the root."""
    held = 16 if dim == 128 else 32
    parents = [-1, 0, 1, 2, 3, 3, 3, 3, 3, 2, 9, 9, 9, 9, 2, 14, 14, 14]
    lengths = [1, 2, held - 4, held, 1, 2, 3, 4, 5, held + 1, 1, 1, 1, 1, 1, 2, 3, 7]
    _, plan, _, _ = run_checked(parents, lengths, cost=DECODE_ALL, kv_heads=2, group=group, page_size=3,
                                dtype=dtype, dim=dim, seed=29)
    assert plan.n_mma_items == 0 and plan.max_decode_rows * group == 12 * group


@gpu
@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("overlap", [True, False])
def test_decode_and_mma_items_in_one_launch(overlap, group):
    """The default cost model: the root (12 x group stacked rows) on the wgmma kernel, the leaves (group rows: 1 takes
    the decode kernel's one-row pass) on the decode kernel, on two streams at once or one after the other."""
    parents = [-1] + [0] * 12
    lengths = [1000] + [1, 2, 63, 64, 65, 129, 300, 511, 5, 17, 33, 2]
    _, plan, _, _ = run_checked(parents, lengths, kv_heads=2, group=group, page_size=16, seed=21, overlap=overlap)
    assert 0 < plan.n_mma_items < plan.n_items


@gpu
@pytest.mark.parametrize("short_unit_tiles", [0, 16])
@pytest.mark.parametrize("group", [1, 3])
def test_row_pass_units_on_a_capped_grid(group, short_unit_tiles):
    """A root over 300 leaves (300 x group stacked rows: 3 or 8 row passes, the last partial) beside leaf decode items:
    the wgmma kernel's units on the plan's capped grid (CostModel(n_sm=3), short_unit_tiles 0: two warpgroups a block,
    2 blocks, `plan.mma_blocks`), each block taking several units of one item's rows; or, the root's 6 KV tiles being
    short units (16), one warpgroup a block looping over a unit's two 64-row blocks, uncapped; odd leaf lengths,
    page size 16."""
    parents = [-1] + [0] * 300
    lengths = [333] + [1 + i % 37 for i in range(300)]
    cost = CostModel(n_sm=3, short_unit_tiles=short_unit_tiles)
    _, plan, _, _ = run_checked(parents, lengths, cost=cost, kv_heads=2, group=group, page_size=16, seed=31)
    want = (2, 2) if short_unit_tiles == 0 else (1, 0)
    assert (plan.consumers, plan.mma_blocks) == want and plan.n_mma_units >= 6
    assert 0 < plan.n_mma_items < plan.n_items


@gpu
@pytest.mark.parametrize("group", [1, 3])
def test_short_nodes_over_many_leaves_on_the_decode_kernel(group):
    """The default cost model on a binary tree of 16-token nodes (as c8's binary10): the short inner nodes over up to
    32 stacked rows are decode items (CostModel.decode_short_work), read in row passes of 2; the upper ones MMA items."""
    t = generate({"fanout": [2] * 6, "lengths": [64, 16, 16, 16, 16, 16, 15], "seed": 3})
    _, plan, _, _ = run_checked(list(t.parents), list(t.lengths), kv_heads=2, group=group, page_size=16, seed=23)
    assert plan.n_mma_items > 0 and plan.max_decode_rows * group > CostModel().decode_rows


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dim", [128, 64])
def test_merge_of_more_than_32_partials_per_row(dim, dtype):
    """Pieces of 64 tokens (DECODE_ALL) over two 2,049- and 2,051-token nodes: the leaves merge 67, 67 and 34
    partial rows (the merge kernel loads 32 partials' lse per round)."""
    parents, lengths = [-1, 0, 1, 1, 0], [2049, 2051, 1, 3, 5]
    _, plan, _, _ = run_checked(parents, lengths, cost=DECODE_ALL, kv_heads=1, group=3, page_size=16, dtype=dtype,
                                dim=dim, seed=31)
    assert np.diff(plan.leaf_partial_offset.cpu().numpy()).max() > 64


@gpu
@pytest.mark.parametrize("packed", [True, False])
def test_long_chain_split_across_node_borders(packed):
    run_checked(list(range(-1, 9)), [1, 37, 2, 64, 1, 99, 3, 1, 50, 7], cost=SPLIT_HARD, group=1, packed=packed,
                page_size=3, seed=13)


@gpu
def test_sanitizer_small_cases():
    """Small enough to run under compute-sanitizer (see the module docstring)."""
    run_checked([-1, 0, 0, 2, 2], [5, 1, 70, 3, 1], kv_heads=2, group=4, page_size=16, seed=1)
    run_checked([-1, 0, 1], [1, 1, 1], kv_heads=1, group=1, page_size=1, dtype=torch.float16, dim=64, seed=2)
    run_checked(list(range(-1, 5)), [17, 1, 64, 3, 130, 9], cost=SPLIT_HARD, kv_heads=2, group=2, page_size=3,
                consumers=2, max_blocks=3, seed=3)
    run_checked([-1, 0, 0, 2, 2], [70, 1, 9, 3, 130], cost=DECODE_ALL, kv_heads=2, group=3, page_size=3, seed=4)
    # the KV pipeline's hand-overs on one block: a 5-tile item (the 2- and 3-stage rings wrap) of 160 stacked rows
    # (3 row blocks of 1 warpgroup; 2 of 2, the second with an idle warpgroup), then 40 one-tile items (all on the
    # wgmma kernel: decode_rows=0)
    for consumers, dim in ((1, 128), (2, 128), (1, 64)):
        run_checked([-1] + [0] * 40, [300] + [1 + i % 3 for i in range(40)], cost=CostModel(decode_rows=0),
                    kv_heads=1, group=4, page_size=16, dim=dim, consumers=consumers, max_blocks=1, seed=4)


@gpu
def test_public_api_and_torch_backend_agree():
    parents, lengths = random_case(random.Random(7))
    tree, _, _, q = make(parents, lengths, kv_heads=2, group=4, page_size=16, seed=7, nan_free_slots=False)
    a = tree_attention(q, tree, backend="tk")
    b = tree_attention(q, tree, backend="torch")
    assert float((a.double() - b.double()).norm() / b.double().norm()) < TOL[q.dtype]


@gpu
def test_cuda_graph_replay():
    parents, lengths = random_case(random.Random(9))
    tree, ks, vs, q = make(parents, lengths, kv_heads=2, group=2, page_size=16, seed=9)
    plan = tree.plan(q.shape[1])
    static_q = q.clone()
    tk_tree.tree_attention(static_q, tree, plan)  # warm-up: loads the extension, sets the kernel attributes
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = tk_tree.tree_attention(static_q, tree, plan)
    for step in range(3):
        static_q.copy_(torch.randn_like(q, dtype=torch.float32).to(q.dtype))
        graph.replay()
        torch.cuda.synchronize()
        ref, _ = oracle(parents, ks, vs, static_q)
        assert float((out.double().cpu() - ref).norm() / ref.norm()) < TOL[q.dtype], f"replay {step}"


@gpu
def test_bad_input_is_rejected_naming_the_argument():
    tree, _, _, q = make([-1, 0, 0], [10, 1, 2], kv_heads=2, group=2, seed=1)
    with pytest.raises(TypeError, match="backend='tk' needs q of dtype bfloat16 or float16"):
        t32, _, _, q32 = make([-1, 0, 0], [10, 1, 2], dtype=torch.float32, nan_free_slots=False)
        tree_attention(q32, t32, backend="tk")
    with pytest.raises(ValueError, match="head_dim 64 or 128"):
        t16, _, _, q16 = make([-1, 0, 0], [10, 1, 2], dim=16, nan_free_slots=False)
        tree_attention(q16, t16, backend="tk")
    with pytest.raises(ValueError, match="consumers must be 1 or 2"):
        tk_tree.tree_attention(q, tree, tree.plan(q.shape[1]), consumers=3)
    with pytest.raises(ValueError, match="q.shape\\[0\\]"):
        tree_attention(q[:1], tree, backend="tk")
    with pytest.raises(TypeError, match="cost must be a CostModel"):
        tree_attention(q, tree, backend="tk", cost=CostModel)
