"""A CPU model of the TK tree kernel's addressing (kernels/tree/tree.cu), checked against the TreePlan's meaning.

`kernel_model` runs the same loops as `tree_attend_kernel` -- the plan's MMA units (item, kv-head, stacked rows
[row_begin, row_end)) dealt to persistent blocks, row blocks of NC * 64 stacked rows, 64-token KV tiles filled by
walking the item's segments with a cursor, the pool row of each tile token, the query row each stacked row gathers,
and the (partial row, q-head, columns) each lane writes from its wgmma fragment -- as plain Python. The tests then
check what the plan promises, from the tree itself (node lengths, page table, first slots), not from the plan's own
formulas: per (leaf row, q-head), the partials the merge lists were each written exactly once, by the right query,
and together read exactly the leaf's root-to-leaf tokens, each once, in tree order within a partial; every tile's
padding is masked; every address is in bounds.

Plans here put every item on the wgmma kernel (`decode_rows=0`); the decode kernel (kernels/tree/tree_decode.cuh,
the items of a few stacked rows) is not modelled. It proves the index math of the kernel as transcribed here, not the
kernel: a transcription slip, wgmma, the swizzled
shared-memory layout and the barriers are only checked by tests/gpu/test_tk_tree.py on a GPU.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_tree_attention import SPLIT_HARD, build, leaf_paths, preorder_parents
from tkprefix import CostModel

MMA_ALL = CostModel(decode_rows=0)  # every item on the wgmma kernel, the one modelled here
from tkprefix.reference import attention_with_lse

ROWS_PER_CONSUMER = KV_TILE = 64  # tree.cu
WARPGROUP_WARPS, WARP_THREADS = 4, 32


def kernel_model(plan, hkv, page_size, hq, nc, grid, d=64):
    """The memory traffic of tree_attend_kernel<T, d, nc> on a grid of `grid` blocks, per (item, kv-head)
    u = item * hkv + h (the rows of all its MMA units):
    reads[u] = [(row block, wg, [pool row or -1 for each of the 64 tile slots], filled), ...] per KV tile,
    q_rows[u] = {stacked row e: (leaf row, q-head)} gathered into the q tile, and
    writes = [(u, e, partial row, q-head, column)] for every float of part_o (lse: the lane % 4 == 0 lanes)."""
    h_ = plan.host
    row_start, row_end, seg_offset = h_["item_row_start"], h_["item_row_end"], h_["item_seg_offset"]
    partial_offset, seg_page, seg_slot, seg_len = (h_["item_partial_offset"], h_["seg_page"], h_["seg_slot"],
                                                   h_["seg_len"])
    page_table, group = h_["page_table"], hq // hkv
    reads, q_rows, writes, lse_writes = defaultdict(list), defaultdict(dict), [], []
    for block in range(grid):
        for unit in range(block, plan.n_mma_units, grid):
            item, h, unit_row_begin, unit_row_end = (int(x) for x in h_["mma_units"][unit])
            u = item * hkv + h
            row0 = int(row_start[item])
            s_begin, s_end = int(seg_offset[item]), int(seg_offset[item + 1])
            part0 = int(partial_offset[item])
            for rb in range(unit_row_begin, unit_row_end, nc * ROWS_PER_CONSUMER):
                active = {}
                for wg in range(nc):
                    tile_row0 = rb + wg * ROWS_PER_CONSUMER
                    my_rows = min(ROWS_PER_CONSUMER, unit_row_end - tile_row0)
                    active[wg] = (tile_row0, my_rows > 0)
                    for r in range(max(my_rows, 0)):  # the q gather
                        e = tile_row0 + r
                        assert e not in q_rows[u], "a stacked row gathered twice"
                        q_rows[u][e] = (row0 + e // group, h * group + e % group)
                seg, seg_off = s_begin, 0
                while seg < s_end:
                    filled, tok_row = 0, [None] * KV_TILE
                    while filled < KV_TILE and seg < s_end:
                        length = int(seg_len[seg])
                        n = min(length - seg_off, KV_TILE - filled)
                        page0, pos0 = int(seg_page[seg]), int(seg_slot[seg]) + seg_off
                        for j in range(n):  # warp 0: lane j, j + 32
                            pos = pos0 + j
                            page = int(page_table[page0 + pos // page_size])
                            tok_row[filled + j] = (page * hkv + h) * page_size + pos % page_size
                        filled += n
                        seg_off += n
                        if seg_off == length:
                            seg, seg_off = seg + 1, 0
                    for j in range(filled, KV_TILE):
                        tok_row[j] = -1
                    for wg, (_, is_active) in active.items():
                        if is_active:
                            reads[u].append((rb, wg, list(tok_row), filled))
                for wg, (tile_row0, is_active) in active.items():
                    if not is_active:
                        continue
                    for warp in range(WARPGROUP_WARPS):  # the finish: this warp's 16 stacked rows
                        warp_row0 = tile_row0 + warp * 16
                        for lane in range(WARP_THREADS):
                            for half in range(2):
                                e = warp_row0 + lane // 4 + 8 * half
                                if e >= unit_row_end:
                                    continue
                                prow, qh = part0 + e // group, h * group + e % group
                                for j in range(d // 16):
                                    col = j * 16 + 2 * (lane % 4)
                                    for c in (col, col + 1, col + 8, col + 9):
                                        writes.append((u, e, prow, qh, c))
                                if lane % 4 == 0:
                                    lse_writes.append((u, e, prow, qh))
    return reads, q_rows, writes, lse_writes


def token_of_address(tree):
    """(pool page, kv-head, slot) -> (node, token index in the node, stream position), from the tree's own fields."""
    out, stream = {}, 0
    for i, n in enumerate(tree.lengths.tolist()):
        pos = int(tree.first_slot[i]) + np.arange(n)
        pages = tree.page_table[tree.node_page_offset[i] + pos // tree.page_size]
        for j in range(n):
            for h in range(tree.kv_heads):
                out[(int(pages[j]), h, int(pos[j] % tree.page_size))] = (i, j, stream + j)
        stream += n
    return out


def check_model(case, nc, grid, d=64):
    tree, *_ = build(case["parents"], case["lengths"], kv_heads=case["kv_heads"], page_size=case["page_size"],
                     packed=case["packed"], dim=8)
    hkv, page_size, group = tree.kv_heads, tree.page_size, case["group"]
    hq = hkv * group
    plan = tree.plan(hq, case["cost"])
    assert plan.n_mma_items == plan.n_items, "the model is of the wgmma kernel: every item on it"
    reads, q_rows, writes, lse_writes = kernel_model(plan, hkv, page_size, hq, nc, grid, d)
    addr = token_of_address(tree)
    n_pool_rows = tree.k_pool.shape[0] * hkv * page_size
    assert set(reads) == set(q_rows) == set(range(plan.n_items * hkv)), "every unit runs, on some block"

    # per unit: its KV tokens (each row block and active warpgroup sees the same tile sequence)
    unit_tokens = {}
    for u, tiles in reads.items():
        h = u % hkv
        by_pass = defaultdict(list)
        for rb, wg, tok_row, filled in tiles:
            assert 1 <= filled <= KV_TILE
            assert all(r >= 0 for r in tok_row[:filled]) and all(r == -1 for r in tok_row[filled:]), \
                "slots past `filled` must be the zeroed, -inf-masked padding; slots before it real tokens"
            by_pass[(rb, wg)].append(tok_row[:filled])
        seqs = {k: [r for t in v for r in t] for k, v in by_pass.items()}
        first = next(iter(seqs.values()))
        assert all(s == first for s in seqs.values()), "every row block re-reads the same KV"
        assert all(len(t) == KV_TILE for v in by_pass.values() for t in v[:-1]), "only the last tile is partial"
        toks = []
        for row in first:
            assert 0 <= row < n_pool_rows
            page, rest = divmod(row, hkv * page_size)
            head, slot = divmod(rest, page_size)
            assert head == h, "a unit reads only its kv-head's rows"
            assert (page, head, slot) in addr, f"pool row {row} (page {page}, slot {slot}) holds no tree token"
            toks.append(addr[(page, head, slot)])
        streams = [t[2] for t in toks]
        assert streams == list(range(streams[0], streams[0] + len(streams))), \
            "a unit reads a contiguous piece of the node stream, in order, each token once"
        unit_tokens[u] = toks

    # per unit: the query rows, and the partial rows written from them
    h_ = plan.host
    for u, rows in q_rows.items():
        item, h = u // hkv, u % hkv
        n_stacked = int(h_["item_row_end"][item] - h_["item_row_start"][item]) * group
        assert sorted(rows) == list(range(n_stacked)), "every stacked row of the unit gathered exactly once"
    leaf_of_partial = np.repeat(np.arange(plan.n_rows), np.diff(h_["leaf_partial_offset"]))
    partial_leaf = np.empty(plan.n_partials, np.int64)
    partial_leaf[h_["leaf_partial_index"]] = leaf_of_partial
    cells = Counter((prow, qh, c) for _, _, prow, qh, c in writes)
    assert len(cells) == plan.n_partials * hq * d and set(cells.values()) == {1}, \
        "every float of part_o written exactly once"
    lse_cells = Counter((prow, qh) for _, _, prow, qh in lse_writes)
    assert len(lse_cells) == plan.n_partials * hq and set(lse_cells.values()) == {1}, "every lse written once"
    writer = {}
    for u, e, prow, qh in lse_writes:
        assert 0 <= prow < plan.n_partials and 0 <= qh < hq
        assert q_rows[u][e] == (partial_leaf[prow], qh), "a partial row holds the query of the leaf the merge expects"
        writer[(prow, qh)] = u

    # per (leaf row, q-head): the merged partials read exactly the leaf's root-to-leaf tokens, once each
    paths = leaf_paths(list(case["parents"]))
    for r, path in enumerate(paths):
        want = sorted((i, j) for i in path for j in range(case["lengths"][i]))
        merged = h_["leaf_partial_index"][h_["leaf_partial_offset"][r]:h_["leaf_partial_offset"][r + 1]]
        for qh in range(hq):
            got = sorted((t[0], t[1]) for p in merged for t in unit_tokens[writer[(int(p), qh)]])
            assert got == want, f"leaf {r}, q-head {qh}: merged partials read the wrong tokens"
    return plan


@st.composite
def cases(draw):
    n = draw(st.integers(1, 14))
    depths = [0]
    for _ in range(n - 1):
        depths.append(draw(st.integers(1, min(depths[-1] + 1, 5))))
    lengths = draw(st.lists(st.one_of(st.just(1), st.integers(1, 150)), min_size=n, max_size=n))
    return dict(parents=preorder_parents(depths), lengths=lengths, kv_heads=draw(st.integers(1, 2)),
                group=draw(st.sampled_from([1, 3, 8])), page_size=draw(st.sampled_from([1, 3, 16, 64])),
                packed=draw(st.booleans()), cost=draw(st.sampled_from([MMA_ALL, SPLIT_HARD])))


@settings(max_examples=60, deadline=None)
@given(cases(), st.sampled_from([1, 2]), st.sampled_from([1, 3, 1000]))
def test_kernel_addressing_matches_the_plan(case, nc, grid):
    check_model(case, nc, grid)


def test_wide_item_row_blocks_and_tile_borders():
    """One 150-token root under 70 leaves x 8 q-heads (560 stacked rows: 9 or 5 row blocks, the last partial), a
    70-token chain split at tile multiples, page size 3 (tiles and segments cross pages)."""
    case = dict(parents=[-1] + [0] * 70 + [70, 71], lengths=[150] + [1 + i % 5 for i in range(70)] + [40, 30],
                kv_heads=2, group=8, page_size=3, packed=True, cost=SPLIT_HARD)
    for nc in (1, 2):
        plan = check_model(case, nc, grid=5, d=128)
        assert plan.max_item_rows * plan.group == 70 * 8


def test_model_checks_can_fail(monkeypatch):
    """The checks catch a wrong q-head per stacked row, and a dropped token."""
    case = dict(parents=[-1, 0, 0], lengths=[70, 3, 5], kv_heads=1, group=2, page_size=16, packed=True, cost=None)
    real = kernel_model

    def wrong_head(*args, **kw):
        reads, q_rows, writes, lse_writes = real(*args, **kw)
        return (reads, q_rows, [(u, e, p, (q + 1) % 2, c) for u, e, p, q, c in writes],
                [(u, e, p, (q + 1) % 2) for u, e, p, q in lse_writes])

    def dropped_token(*args, **kw):
        reads, *rest = real(*args, **kw)
        rb, wg, tok_row, filled = reads[0][-1]
        reads[0][-1] = (rb, wg, tok_row[:filled - 1] + [-1] * (KV_TILE - filled + 1), filled - 1)
        return (reads, *rest)

    for broken in (wrong_head, dropped_token):
        monkeypatch.setitem(globals(), "kernel_model", broken)
        with pytest.raises(AssertionError):
            check_model(case, nc=1, grid=1)


def emulate(q, tree, plan, nc=1, grid=1):
    """The kernel's arithmetic on the model's traffic, on the CPU: per (unit, row block, warpgroup) a zero-padded 64-row
    q tile, per KV tile the gathered K/V rows (zero where tok_row is -1), scores masked from `filled` on, the base-2
    online softmax of tkp_softmax.cuh with P rounded to q's dtype for P V, the finish (o / sum, lse = max * scale *
    ln 2 + ln sum), then merge_rows_kernel's LSE merge. Returns o (q's dtype) and lse (float32)."""
    hkv, page_size, d = tree.kv_heads, tree.page_size, q.shape[2]
    hq, group = q.shape[1], q.shape[1] // tree.kv_heads
    scale = 1.4426950408889634 / d ** 0.5  # tkp::softmax_scale_log2<D>
    reads, q_rows, _, lse_writes = kernel_model(plan, hkv, page_size, hq, nc, grid, d)
    k_rows, v_rows = (p.reshape(-1, d).float() for p in (tree.k_pool, tree.v_pool))
    dest = {(u, e): (p, qh) for u, e, p, qh in lse_writes}
    part_o = torch.full((plan.n_partials, hq, d), float("nan"))
    part_lse = torch.full((plan.n_partials, hq), float("nan"))
    tiles = defaultdict(list)
    for u, unit_tiles in reads.items():
        for rb, wg, tok_row, filled in unit_tiles:
            tiles[(u, rb, wg)].append((tok_row, filled))
    for (u, rb, wg), unit_tiles in tiles.items():
        tile_row0 = rb + wg * ROWS_PER_CONSUMER
        q_tile = torch.zeros(ROWS_PER_CONSUMER, d)
        for r in range(ROWS_PER_CONSUMER):
            if tile_row0 + r in q_rows[u]:
                q_tile[r] = q[q_rows[u][tile_row0 + r]].float()
        m, norm, o = torch.full((ROWS_PER_CONSUMER,), float("-inf")), torch.zeros(ROWS_PER_CONSUMER), 0
        for tok_row, filled in unit_tiles:
            idx = torch.tensor(tok_row)
            k = torch.where(idx[:, None] >= 0, k_rows[idx.clamp(min=0)], 0.0)
            v = torch.where(idx[:, None] >= 0, v_rows[idx.clamp(min=0)], 0.0)
            att = q_tile @ k.T
            att[:, filled:] = float("-inf")
            rescale = m * scale
            m = torch.maximum(att.max(dim=1).values, m)
            max_scaled = m * scale
            att = torch.exp2(att * scale - max_scaled[:, None])
            rescale = torch.exp2(rescale - max_scaled)
            norm = norm * rescale + att.sum(dim=1)
            o = o * rescale[:, None] + att.to(q.dtype).float() @ v
        o, lse = o / norm[:, None], max_scaled * math.log(2) + torch.log(norm)
        for r in range(ROWS_PER_CONSUMER):
            if (u, tile_row0 + r) in dest:
                prow, qh = dest[(u, tile_row0 + r)]
                part_o[prow, qh], part_lse[prow, qh] = o[r], lse[r]
    off, idx = plan.host["leaf_partial_offset"], plan.host["leaf_partial_index"]
    out, lse_out = torch.empty(q.shape, dtype=q.dtype), torch.empty(q.shape[:2])
    for r in range(plan.n_rows):  # merge_rows_kernel
        ls, os_ = part_lse[idx[off[r]:off[r + 1]]], part_o[idx[off[r]:off[r + 1]]]
        mx = ls.max(dim=0).values
        w = torch.exp(ls - mx)
        out[r] = ((w[..., None] * os_).sum(dim=0) / w.sum(dim=0)[:, None]).to(q.dtype)
        lse_out[r] = mx + torch.log(w.sum(dim=0))
    return out, lse_out


@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 2e-2), (torch.float16, 4e-3)])
@pytest.mark.parametrize("nc, page_size, packed", [(1, 3, True), (2, 16, False), (1, 1, True)])
def test_emulated_kernel_matches_float64(dtype, tol, nc, page_size, packed):
    """The kernel's arithmetic over its modelled traffic equals float64 attention over each leaf's path, with every
    pool slot no node owns holding NaN (the tolerances of tests/gpu/test_tk_tree.py)."""
    parents, lengths = [-1, 0, 1, 1, 0, 4, 4, 4], [70, 1, 5, 64, 2, 130, 1, 9]
    tree, ks, vs, q = build(parents, lengths, kv_heads=2, group=3, page_size=page_size, packed=packed, dtype=dtype,
                            dim=64)
    for pool in (tree.k_pool, tree.v_pool):  # NaN in every slot no node owns
        owned = torch.zeros(pool.shape[0], page_size, dtype=torch.bool)
        for i, n in enumerate(tree.lengths.tolist()):
            pos = tree.first_slot[i] + np.arange(n)
            owned[torch.from_numpy(tree.page_table[tree.node_page_offset[i] + pos // page_size]),
                  torch.from_numpy(pos % page_size)] = True
        pool.transpose(1, 2)[~owned] = float("nan")
    plan = tree.plan(q.shape[1], SPLIT_HARD)
    o, lse = emulate(q, tree, plan, nc=nc, grid=3)
    ref_o, ref_lse = [], []
    for r, path in enumerate(leaf_paths(parents)):
        k, v = (torch.cat([x[i] for i in path]).double()[None] for x in (ks, vs))
        a, b = attention_with_lse(q[r:r + 1].double()[None], k, v)
        ref_o.append(a[0, 0])
        ref_lse.append(b[0, 0])
    ref_o, ref_lse = torch.stack(ref_o), torch.stack(ref_lse)
    assert torch.isfinite(o).all()
    assert float((o.double() - ref_o).norm() / ref_o.norm()) < tol
    assert float((lse.double() - ref_lse).abs().max()) < 1e-2


def test_wrapper_rejects_a_plan_that_does_not_fit():
    """tk_tree checks the plan against q and the tree before anything reaches the kernel (on the CPU too)."""
    from tkprefix import tk_tree

    tree, _, _, q = build([-1, 0, 0], [10, 1, 2], kv_heads=2, group=2)
    other, *_ = build([-1, 0, 0], [10, 1, 2], kv_heads=2, group=2)
    with pytest.raises(ValueError, match="plan must be a plan of this tree"):
        tk_tree.tree_attention(q, tree, other.plan(4))
    with pytest.raises(ValueError, match=r"q must be \(n_rows=2, plan.group \* tree.kv_heads=2, D\)"):
        tk_tree.tree_attention(q, tree, tree.plan(2))
    with pytest.raises(TypeError, match="plan must be a TreePlan"):
        tk_tree.tree_attention(q, tree, None)
    with pytest.raises(ValueError, match="q must be a CUDA tensor"):
        tk_tree.tree_attention(q, tree, tree.plan(4))
