"""Tree attention at node granularity: a prefix tree of KV nodes over a paged pool and the work list of a decode step.

`PagedTree` is the tree (nodes in depth-first preorder, one decode query per leaf, leaves in preorder = the rows of q)
and where each node's tokens live in a paged pool: node boundaries may fall anywhere inside a page, and a node may be
one token long. `plan_tree(tree, q_heads)` turns it into a `TreePlan`: flat int32 tensors that a kernel consumes
(docs/design.md, "Tree attention"). Every step here is vectorized numpy over nodes, items or segments: the only Python
loops are O(log depth) pointer-jumping rounds; nothing loops per node, leaf or token.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .validation import FLOAT_DTYPES, check_tensor

__all__ = ["PagedTree", "TreePlan", "CostModel", "plan_tree", "tree_shape"]


def _ints(name: str, values, ndim: int = 1) -> np.ndarray:
    a = values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if a.ndim != ndim or (a.size and a.dtype.kind not in "iu"):
        raise TypeError(f"{name} must be a {ndim}-D sequence of ints, got {type(values).__name__} "
                        f"of shape {a.shape} and dtype {a.dtype}")
    return a.astype(np.int64)


def _excl_cumsum(x: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(x)))


def _root_path_reduce(parents: np.ndarray, values: np.ndarray, op) -> np.ndarray:
    """Per node, ``op`` over the values of the node and all its ancestors (pointer jumping: O(log depth) rounds of
    vectorized work)."""
    out, anc = values.copy(), parents.copy()
    while (anc >= 0).any():
        up = anc >= 0
        safe = np.maximum(anc, 0)
        out = np.where(up, op(out, out[safe]), out)
        anc = np.where(up, anc[safe], anc)
    return out


def tree_shape(parents) -> dict[str, np.ndarray]:
    """Structure of a tree in depth-first preorder, vectorized: per node ``depth``, ``subtree_end`` (the subtree of i
    is nodes ``[i, subtree_end[i])``), ``n_children``, ``leaf_lo``/``leaf_hi`` (its leaves are rows ``[lo, hi)``);
    ``leaves`` (node ids in preorder). Raises ValueError naming ``parents`` unless node 0 is the root (parent -1) and
    the numbering is a preorder (every node's parent is the last earlier node one level up)."""
    par = _ints("parents", parents)
    n = len(par)
    if n == 0 or par[0] != -1:
        raise ValueError(f"parents: node 0 must be the root with parent -1, got {par[:1].tolist()}")
    ids = np.arange(n)
    bad = np.flatnonzero((par[1:] < 0) | (par[1:] >= ids[1:]))
    if len(bad):
        i = int(bad[0]) + 1
        raise ValueError(f"parents[{i}] must be an earlier node in [0, {i}), got {par[i]} (preorder numbering)")
    depth = _root_path_reduce(par, (par >= 0).astype(np.int64), np.add)
    # preorder <=> every node is at most one level below its predecessor and its parent is the last earlier node one
    # level up (the depth sequence of a depth-first walk)
    key = depth * (n + 1) + ids
    by_level = np.argsort(key, kind="stable")  # nodes by (depth, id)
    j = np.searchsorted(key[by_level], (depth[1:] - 1) * (n + 1) + ids[1:]) - 1  # last (depth - 1, id < i) entry
    last_up = by_level[np.maximum(j, 0)]
    ok = (j >= 0) & (depth[last_up] == depth[1:] - 1) & (last_up == par[1:]) & (depth[1:] <= depth[:-1] + 1)
    bad = np.flatnonzero(~ok)
    if len(bad):
        i = int(bad[0]) + 1
        raise ValueError(f"parents[{i}] = {par[i]}: nodes must be numbered in depth-first preorder (the parent of "
                         f"node {i} must be node {i - 1} or one of its ancestors)")
    n_children = np.bincount(par[1:], minlength=n)
    # subtree_end[i] = min(next node at i's depth, subtree_end[parent]): a prefix minimum along the root path
    nxt = np.full(n, n, np.int64)
    same = depth[by_level[1:]] == depth[by_level[:-1]]
    nxt[by_level[:-1][same]] = by_level[1:][same]
    end = _root_path_reduce(par, nxt, np.minimum)
    is_leaf = n_children == 0
    leaves_before = _excl_cumsum(is_leaf)
    return {"depth": depth, "subtree_end": end, "n_children": n_children, "leaves": np.flatnonzero(is_leaf),
            "leaf_lo": leaves_before[:-1], "leaf_hi": leaves_before[end]}


@dataclass(eq=False)
class PagedTree:
    """A prefix tree of KV nodes whose tokens live in a paged pool (read in place, never copied per leaf).

    ``parents`` (n_nodes,): node ids in depth-first preorder, ``parents[0] = -1``. Leaf ``r`` (the r-th leaf in
    preorder) owns query row ``r`` and attends to every token on its root-to-leaf path, so the leaves under any node
    are one contiguous range of rows. ``lengths`` (n_nodes,): tokens per node, >= 1.
    ``k_pool``, ``v_pool`` (n_pages, Hkv, page_size, D): head-major inside a page, like ChunkKVCache's pools, so a
    (page, kv-head) is one contiguous page_size x D block. Node i's pages are
    ``page_table[node_page_offset[i] : node_page_offset[i + 1]]`` and its token j sits in slot ``first_slot[i] + j``
    of that list (page ``(first_slot[i] + j) // page_size``): a node may start and end anywhere inside a page and
    share pages with its neighbours. Build one from per-node K/V with :meth:`from_nodes`.
    """

    parents: np.ndarray
    lengths: np.ndarray
    page_table: np.ndarray
    node_page_offset: np.ndarray
    first_slot: np.ndarray
    k_pool: torch.Tensor
    v_pool: torch.Tensor
    _plans: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.shape = tree_shape(self.parents)  # checks parents (root, preorder)
        self.parents = _ints("parents", self.parents)
        n = len(self.parents)
        for name in ("lengths", "first_slot", "node_page_offset", "page_table"):
            setattr(self, name, _ints(name, getattr(self, name)))
        check_tensor("k_pool", self.k_pool, ndim=4, dtypes=FLOAT_DTYPES)
        check_tensor("v_pool", self.v_pool, ndim=4, dtypes=FLOAT_DTYPES)
        if self.k_pool.shape != self.v_pool.shape or self.k_pool.dtype != self.v_pool.dtype \
                or self.k_pool.device != self.v_pool.device:
            raise ValueError(f"v_pool must match k_pool's shape, dtype and device, got {tuple(self.v_pool.shape)} "
                             f"{self.v_pool.dtype} {self.v_pool.device} and {tuple(self.k_pool.shape)} "
                             f"{self.k_pool.dtype} {self.k_pool.device}")
        n_pages, _, page_size, _ = self.k_pool.shape
        for name, want in (("lengths", n), ("first_slot", n), ("node_page_offset", n + 1)):
            if len(getattr(self, name)) != want:
                raise ValueError(f"{name} must hold {want} entries (n_nodes = len(parents) = {n}), "
                                 f"got {len(getattr(self, name))}")
        if (self.lengths < 1).any():
            i = int(np.argmax(self.lengths < 1))
            raise ValueError(f"lengths[{i}]: a node holds at least one token, got {self.lengths[i]}")
        if ((self.first_slot < 0) | (self.first_slot >= page_size)).any():
            i = int(np.argmax((self.first_slot < 0) | (self.first_slot >= page_size)))
            raise ValueError(f"first_slot[{i}] must lie in [0, page_size={page_size}), got {self.first_slot[i]}")
        need = -(-(self.first_slot + self.lengths) // page_size)
        off = self.node_page_offset
        if off[0] != 0 or off[-1] != len(self.page_table) or (np.diff(off) != need).any():
            bad = np.flatnonzero(np.diff(off) != need)
            raise ValueError("node_page_offset must be a CSR over page_table (starting at 0, ending at "
                             f"len(page_table) = {len(self.page_table)}) giving node i ceil((first_slot[i] + "
                             f"lengths[i]) / page_size) pages" + (f"; node {bad[0]} has {np.diff(off)[bad[0]]}, "
                                                                  f"needs {need[bad[0]]}" if len(bad) else ""))
        if len(self.page_table) and (self.page_table.min() < 0 or self.page_table.max() >= n_pages):
            raise ValueError(f"page_table entries must be page ids in [0, n_pages={n_pages}) of k_pool, got "
                             f"[{self.page_table.min()}, {self.page_table.max()}]")
        for name in ("parents", "lengths", "first_slot", "node_page_offset", "page_table"):
            getattr(self, name).setflags(write=False)  # the cached plans describe these: a changed tree is a new one

    @property
    def n_nodes(self) -> int:
        return len(self.parents)

    @property
    def n_leaves(self) -> int:
        return len(self.shape["leaves"])

    @property
    def page_size(self) -> int:
        return self.k_pool.shape[2]

    @property
    def kv_heads(self) -> int:
        return self.k_pool.shape[1]

    @property
    def head_dim(self) -> int:
        return self.k_pool.shape[3]

    @property
    def unique_tokens(self) -> int:
        return int(self.lengths.sum())

    def plan(self, q_heads: int, cost: CostModel | None = None) -> TreePlan:
        """The work list for queries of ``q_heads`` heads, built once per (tree, q_heads, cost model): a changed tree
        is a new PagedTree, so the plan of an unchanged one is this same object on every decode step."""
        key = (q_heads, cost or CostModel())
        if key not in self._plans:
            self._plans[key] = plan_tree(self, q_heads, key[1])
        return self._plans[key]

    @classmethod
    def from_nodes(cls, parents, node_ks, node_vs, page_size: int = 64, packed: bool = True,
                   page_perm=None) -> PagedTree:
        """A pool holding node_ks[i], node_vs[i] ((lengths[i], Hkv, D) each). ``packed``: the nodes' tokens follow
        each other in one stream (a node starts in the page where the previous one ended); else each node starts a
        fresh page. ``page_perm`` (a permutation of the pages) scatters them over the pool, so reads must go through
        the page table."""
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, got {page_size!r}")
        if len(node_ks) != len(node_vs) or not len(node_ks):
            raise ValueError(f"node_ks and node_vs need one tensor per node, got {len(node_ks)} and {len(node_vs)}")
        for i, (k, v) in enumerate(zip(node_ks, node_vs)):
            check_tensor(f"node_ks[{i}]", k, ndim=3)
            if v.shape != k.shape or v.dtype != k.dtype:
                raise ValueError(f"node_vs[{i}] must match node_ks[{i}]'s shape and dtype, got {tuple(v.shape)} "
                                 f"{v.dtype} and {tuple(k.shape)} {k.dtype}")
        lengths = np.array([k.shape[0] for k in node_ks], np.int64)
        if packed:
            start = _excl_cumsum(lengths)[:-1]  # token of the stream where node i starts
        else:
            start = _excl_cumsum(-(-lengths // page_size) * page_size)[:-1]
        first_slot, first_page = start % page_size, start // page_size
        n_node_pages = -(-(first_slot + lengths) // page_size)
        node_page_offset = _excl_cumsum(n_node_pages)
        n_pages = int((start[-1] + lengths[-1] + page_size - 1) // page_size)
        logical = np.repeat(first_page - node_page_offset[:-1], n_node_pages) + np.arange(node_page_offset[-1])
        perm = np.arange(n_pages) if page_perm is None else _ints("page_perm", page_perm)
        if sorted(perm.tolist()) != list(range(n_pages)):
            raise ValueError(f"page_perm must be a permutation of range({n_pages}) (the pool's pages)")
        k0 = node_ks[0]
        stream = [torch.cat(list(ts)) for ts in (node_ks, node_vs)]  # (tokens, Hkv, D) in node order, unpadded
        slots = torch.from_numpy(np.repeat(start, lengths) + np.arange(lengths.sum())
                                 - np.repeat(_excl_cumsum(lengths)[:-1], lengths)).to(k0.device)
        pools = []
        for s in stream:
            flat = s.new_zeros(n_pages * page_size, *k0.shape[1:])
            flat[slots] = s
            pool = flat.view(n_pages, page_size, *k0.shape[1:]).transpose(1, 2)  # (pages, Hkv, page_size, D)
            out = torch.empty_like(pool.contiguous())
            out[torch.from_numpy(perm).to(k0.device)] = pool
            pools.append(out)
        return cls(parents, lengths, perm[logical], node_page_offset, first_slot, *pools)


@dataclass(frozen=True)
class CostModel:
    """What one work item costs, in passes of one KV tile (``kv_tile`` tokens of one kv-head) over one block of
    ``rows_per_pass`` stacked query rows (a CTA's consumer warpgroups): ``item_overhead + kv_tiles * row_passes +
    partial_cost * stacked_rows``. A stacked row's partial (``D * 2`` bytes: the TK kernels store it in q's dtype) is
    written, then read by the merge, against ``2 * kv_tile * D * 2`` bytes of a KV tile: 1/64. The wgmma kernel runs
    a chain's stacked rows in passes of ``rows_per_pass`` (``TreePlan.mma_units``), so a chain is split into KV pieces
    when one pass costs more than a balanced share of the wgmma kernel's resident blocks: ``n_sm`` of them, or
    ``n_sm * small_blocks_per_sm`` when the plan runs one 64-row warpgroup a block (``TreePlan.consumers``: every MMA
    item fits one such tile, or the MMA work is mostly short: the cost-weighted mean KV tiles of the MMA chains is at
    most ``short_unit_tiles``, so that two blocks an SM overlap each unit's fixed latency, the q gather, the pipeline
    fill and the partial write, while long units keep two warpgroups sharing each KV tile; on an H100 binary10 and
    pruned6 ran 0.95x so, wide1024 and wide4096 1.02-1.03x: data/h200/dev/s32_h100), and its piece count is rounded
    down, so that the (item, kv-head) units of one chain fill one wave at most
    (pieces of at least ``min_piece_tiles`` tiles).

    A chain of at most ``decode_rows`` stacked rows (a leaf, a node over a few leaves: no rows worth a 64-row MMA
    tile) is a *decode* item instead: a memory-bound read that a kernel of many small warps runs (the TK backend's
    decode kernel), cut into pieces of at most ``decode_piece_tokens`` tokens so that long leaves spread over the GPU;
    the balanced share is then the MMA items' alone. So is a *short* chain over more rows when the decode kernel's
    work on it, ``ceil(stacked_rows / 2) * tokens`` (it reads the KV once per 2 stacked rows), is at most
    ``decode_short_work``: a 16-token node over 32 leaves is one partly filled tile on the MMA kernel, all per-item
    overhead. ``decode_rows = 0``: every item is an MMA item. The defaults are tuned on the H200 (132 SMs) by a sweep
    over the c8 trees (docs/design.md, "Tree attention").

    ``mma_share``: when the decode kernel runs beside the wgmma kernel and the MMA units fill at least two waves of
    the resident blocks, the wgmma kernel's grid is capped at this share of them (``TreePlan.mma_blocks``), so that
    the decode kernel's warps get SMs of their own instead of the registers a persistent wgmma block leaves (on an
    H100, wide4096 0.88x and wide1024 0.89x at 96 of 132 blocks: data/h200/dev/s32_tree_rowpass)."""

    n_sm: int = 132
    kv_tile: int = 64
    rows_per_pass: int = 128
    item_overhead: float = 2.0
    partial_cost: float = 1 / 64
    min_piece_tiles: int = 8
    small_blocks_per_sm: int = 2
    decode_rows: int = 8
    decode_piece_tokens: int = 64
    decode_short_work: int = 256
    mma_share: float = 0.73
    short_unit_tiles: int = 16

    def __post_init__(self) -> None:
        for name in ("decode_rows", "decode_short_work", "short_unit_tiles"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"CostModel.{name} must be an int >= 0, got {value!r}")
        for name in ("n_sm", "kv_tile", "rows_per_pass", "min_piece_tiles", "decode_piece_tokens",
                     "small_blocks_per_sm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CostModel.{name} must be a positive int, got {value!r}")
        if not 0 < float(self.mma_share) <= 1:
            raise ValueError(f"CostModel.mma_share must be in (0, 1], got {self.mma_share!r}")
        for name in ("item_overhead", "partial_cost"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"CostModel.{name} must be a number >= 0, got {getattr(self, name)!r}")

    def cost(self, tokens: np.ndarray, stacked_rows: np.ndarray) -> np.ndarray:
        passes = -(-tokens // self.kv_tile) * -(-stacked_rows // self.rows_per_pass)
        return self.item_overhead + passes + self.partial_cost * stacked_rows

    def is_decode(self, tokens: np.ndarray, stacked_rows: np.ndarray) -> np.ndarray:
        """Which chains the decode kernel takes: few rows, or a short chain whose decode work is small."""
        if self.decode_rows == 0:
            return np.zeros(np.shape(tokens), bool)
        return (stacked_rows <= self.decode_rows) | (-(-stacked_rows // 2) * tokens <= self.decode_short_work)


@dataclass(frozen=True, eq=False)
class TreePlan:
    """The work list of one decode step over a PagedTree, as a kernel consumes it. int32 tensors on the pool's device
    (``host``: the same arrays as int64 numpy). G = q_heads // kv_heads; every item runs once per kv-head h, on the
    stacked query rows ``q[row_start:row_end, h*G:(h+1)*G]`` (``(row_end - row_start) * G`` rows, contiguous: no
    query index list).

    item i (n_items: first the n_mma_items MMA items in descending cost, the order a persistent kernel takes them;
           then the decode items (CostModel.is_decode), in descending cost)
        item_row_start[i], item_row_end[i]   its leaf rows [start, end): every leaf under its nodes
        item_seg_offset[i] .. [i + 1]        its KV segments (CSR; consecutive node pieces with the same rows)
        item_partial_offset[i]               leaf row r of the item writes partial row
                                             item_partial_offset[i] + r - start
        item_node[i]                         the first node it reads (diagnostics)
    MMA unit u (n_mma_units; the wgmma kernel's work, in this order)
        mma_units[u] = (item, kv-head h, row_begin, row_end)   stacked rows [row_begin, row_end) of an MMA item: its
                                             rows in passes of CostModel.rows_per_pass, each kv-head, so that an item
                                             of many rows spreads over the GPU; by item, then kv-head, then pass
        mma_blocks                           the wgmma kernel's grid when the decode kernel runs beside it
                                             (CostModel.mma_share; 0: as many blocks as fit)
        consumers                            its consumer warpgroups a block: 1 (64 stacked rows, two blocks an SM)
                                             or 2 (CostModel, "one 64-row warpgroup a block")
    segment s (n_segs; the segments of all items hold every token of the tree exactly once)
        seg_page[s]   index into page_table of the page holding its first token
        seg_slot[s]   slot of that token in the page (0 <= slot < page_size)
        seg_len[s]    tokens >= 1: token t of the segment is page_table[seg_page + (seg_slot + t) // page_size],
                      slot (seg_slot + t) % page_size
    leaf row r (n_rows = leaves)
        leaf_partial_offset[r] .. [r + 1]    CSR into leaf_partial_index: the partial rows merged by LSE into o[r]
    page_table    the tree's page table (the only path to physical pages)

    Partials: ``partial_o (n_partials, Hq, D)`` and ``partial_lse (n_partials, Hq)`` in float32.
    ``kv_tokens_read`` = sum(seg_len) = tokens read per kv-head = the tree's unique tokens (ideal sharing).
    """

    item_row_start: torch.Tensor
    item_row_end: torch.Tensor
    item_seg_offset: torch.Tensor
    item_partial_offset: torch.Tensor
    item_node: torch.Tensor
    mma_units: torch.Tensor
    seg_page: torch.Tensor
    seg_slot: torch.Tensor
    seg_len: torch.Tensor
    leaf_partial_offset: torch.Tensor
    leaf_partial_index: torch.Tensor
    page_table: torch.Tensor
    group: int
    n_items: int
    n_mma_items: int
    n_mma_units: int
    mma_blocks: int
    consumers: int
    n_segs: int
    n_partials: int
    n_rows: int
    max_item_rows: int
    max_mma_rows: int
    max_decode_rows: int
    max_item_tokens: int
    max_leaf_partials: int
    kv_tokens_read: int
    host: dict


def plan_tree(tree: PagedTree, q_heads: int, cost: CostModel | None = None) -> TreePlan:
    """The work list of ``tree`` for queries of ``q_heads`` heads (a multiple of tree.kv_heads). Vectorized:

    1. chains: a node whose parent has one child has its parent's rows, so a maximal run of such nodes (consecutive
       ids in preorder) is one chain, read by the same stacked rows;
    2. each chain becomes floor(cost of a row pass / balanced share) KV pieces (``CostModel``), cut at kv-tile
       multiples; a chain the decode kernel takes (``cost.is_decode``) is a decode item, cut into pieces of
       ``cost.decode_piece_tokens``;
    3. pieces are cut at node boundaries into segments and addressed as (page-table index, slot, length);
    4. leaf row r merges one partial per item on its path;
    5. the wgmma kernel's units: each MMA item's stacked rows in passes of ``cost.rows_per_pass``, per kv-head.
    """
    if not isinstance(tree, PagedTree):
        raise TypeError(f"tree must be a PagedTree, got {type(tree).__name__}")
    if isinstance(q_heads, bool) or not isinstance(q_heads, (int, np.integer)) or q_heads < 1 \
            or q_heads % tree.kv_heads:
        raise ValueError(f"q_heads must be a positive multiple of the tree's {tree.kv_heads} kv-heads, got {q_heads!r}")
    cost = cost or CostModel()
    G, P, sh = int(q_heads) // tree.kv_heads, tree.page_size, tree.shape
    lengths, n = tree.lengths, tree.n_nodes
    node_start = _excl_cumsum(lengths)  # node order "stream" coordinate: node i is [node_start[i], node_start[i+1])
    # 1. chains
    chain_head = np.ones(n, bool)
    chain_head[1:] = sh["n_children"][tree.parents[1:]] != 1
    head = np.flatnonzero(chain_head)
    chain_t0, chain_len = node_start[head], np.add.reduceat(lengths, head)
    chain_rows = sh["leaf_hi"][head] - sh["leaf_lo"][head]
    # 2. KV pieces: a chain whose row pass (the wgmma kernel's unit) costs more than the share
    whole = cost.cost(chain_len, chain_rows * G)
    decode = cost.is_decode(chain_len, chain_rows * G)
    tiles = -(-chain_len // cost.kv_tile)
    mma = ~decode
    short = mma.any() and (whole[mma] * tiles[mma]).sum() <= cost.short_unit_tiles * whole[mma].sum()
    one_warpgroup = bool(short) or not (chain_rows[mma] * G > cost.rows_per_pass // 2).any()
    blocks = cost.n_sm * (cost.small_blocks_per_sm if one_warpgroup else 1)  # the wgmma kernel's resident blocks
    share = max(tree.kv_heads * whole[mma].sum() / blocks, 1e-9)
    row_pass = cost.cost(chain_len, np.minimum(chain_rows * G, cost.rows_per_pass))
    pieces = np.clip(np.floor(row_pass / share).astype(np.int64), 1, np.maximum(1, tiles // cost.min_piece_tiles))
    pieces = np.where(decode, -(-chain_len // cost.decode_piece_tokens), pieces)
    piece_len = -(-tiles // pieces) * cost.kv_tile
    pieces = -(-chain_len // piece_len)
    chain_of = np.repeat(np.arange(len(head)), pieces)
    k = np.arange(len(chain_of)) - np.repeat(_excl_cumsum(pieces)[:-1], pieces)
    t0 = chain_t0[chain_of] + k * piece_len[chain_of]  # increasing: chains are in node order
    t1 = np.minimum(t0 + piece_len[chain_of], chain_t0[chain_of] + chain_len[chain_of])
    rows = chain_rows[chain_of]
    # order: MMA items by descending cost of a row pass (their units' cost), then decode items by descending cost
    # (stable: ties keep tree order)
    item_decode = decode[chain_of]
    unit_rows = np.where(item_decode, rows * G, np.minimum(rows * G, cost.rows_per_pass))
    order = np.lexsort((-cost.cost(t1 - t0, unit_rows), item_decode))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    # 3. segments: cut every piece at node starts
    cuts = np.union1d(node_start[:-1], t0)
    seg_end = np.append(cuts[1:], node_start[-1])
    seg_item = rank[np.searchsorted(t0, cuts, side="right") - 1]
    seg_node = np.searchsorted(node_start, cuts, side="right") - 1
    pos = tree.first_slot[seg_node] + cuts - node_start[seg_node]
    by_item = np.argsort(seg_item, kind="stable")  # segments grouped by item (in token order inside an item)
    seg = {"seg_page": (tree.node_page_offset[seg_node] + pos // P)[by_item], "seg_slot": (pos % P)[by_item],
           "seg_len": (seg_end - cuts)[by_item]}
    item_seg_offset = _excl_cumsum(np.bincount(seg_item, minlength=len(order)))
    # 4. partials and the merge lists
    row_start, row_end = sh["leaf_lo"][head][chain_of][order], sh["leaf_hi"][head][chain_of][order]
    n_item_rows = row_end - row_start
    partial_offset = _excl_cumsum(n_item_rows)
    n_partials = int(partial_offset[-1])
    partial_row = np.repeat(row_start - partial_offset[:-1], n_item_rows) + np.arange(n_partials)  # leaf of each
    n_rows = tree.n_leaves
    per_leaf = np.bincount(partial_row, minlength=n_rows)
    host = {"item_row_start": row_start, "item_row_end": row_end, "item_seg_offset": item_seg_offset,
            "item_partial_offset": partial_offset[:-1], "item_node": head[chain_of][order], **seg,
            "leaf_partial_offset": _excl_cumsum(per_leaf),
            "leaf_partial_index": np.argsort(partial_row, kind="stable"), "page_table": tree.page_table}
    n_mma = int((~item_decode).sum())
    # 5. the wgmma kernel's units: each MMA item's stacked rows in passes of rows_per_pass, per kv-head; by item (so
    # by descending cost), then kv-head, then pass, so that the blocks running at once share few kv-heads' KV in L2
    stacked = n_item_rows[:n_mma] * G
    n_pass = -(-stacked // cost.rows_per_pass)
    unit_item = np.repeat(np.arange(n_mma), n_pass * tree.kv_heads)
    k = np.arange(len(unit_item)) - np.repeat(_excl_cumsum(n_pass * tree.kv_heads)[:-1], n_pass * tree.kv_heads)
    row_begin = (k % n_pass[unit_item]) * cost.rows_per_pass
    host["mma_units"] = np.stack([unit_item, k // n_pass[unit_item], row_begin,
                                  np.minimum(row_begin + cost.rows_per_pass, stacked[unit_item])], 1).reshape(-1, 4)
    dev = tree.k_pool.device
    tensors = {name: torch.from_numpy(a.astype(np.int32)).to(dev) for name, a in host.items()}
    item_tokens = np.add.reduceat(seg["seg_len"], item_seg_offset[:-1])  # every tree has a node, so an item
    # the wgmma grid beside the decode kernel (CostModel.mma_share; two warpgroups a block: one-warpgroup blocks are
    # small enough to leave the decode kernel room); 0: as many blocks as fit
    capped = not one_warpgroup and n_mma < len(order) and len(unit_item) >= 2 * blocks
    mma_blocks = max(1, round(blocks * cost.mma_share)) if capped and cost.mma_share < 1 else 0
    return TreePlan(**tensors, group=G, n_items=len(order), n_mma_items=n_mma, n_mma_units=len(unit_item),
                    mma_blocks=mma_blocks, consumers=1 if one_warpgroup else 2, n_segs=len(cuts),
                    n_partials=n_partials, n_rows=n_rows, max_item_rows=int(n_item_rows.max()),
                    max_mma_rows=int(n_item_rows[:n_mma].max()) if n_mma else 0,
                    max_decode_rows=int(n_item_rows[n_mma:].max()) if n_mma < len(order) else 0,
                    max_item_tokens=int(item_tokens.max()),
                    max_leaf_partials=int(per_leaf.max()), kv_tokens_read=int(seg["seg_len"].sum()), host=host)
