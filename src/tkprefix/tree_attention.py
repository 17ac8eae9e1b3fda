"""Tree attention at node granularity (issue 13): one decode query per leaf of a `PagedTree`, each attending to its
root-to-leaf KV, computed by the work list of `TreePlan` (per item (o, lse) partials, merged per leaf by LSE)."""
from __future__ import annotations

import torch

from . import reference
from .backend import resolve_backend
from .tree_plan import CostModel, PagedTree, TreePlan
from .validation import check_dim, check_gqa, check_tensor

TREE_BACKENDS = ("auto", "torch", "tk")


def tree_attention(q: torch.Tensor, tree: PagedTree, backend: str = "auto", cost: CostModel | None = None
                   ) -> torch.Tensor:
    """q (n_leaves, Hq, D), row r = the r-th leaf in preorder, Hq a multiple of tree.kv_heads → o, same shape.

    The plan is built once per (tree, Hq, cost) and reused (``tree.plan``). ``backend="torch"`` executes the plan in
    PyTorch; ``"tk"`` runs the TK kernels (``tkprefix.tk_tree``: bf16/fp16, head_dim 64/128, a Hopper GPU and the
    built extension, else a RuntimeError/ValueError naming what is missing). ``"auto"`` is ``"tk"`` where those hold
    and the extension holds the tree family, else ``"torch"``.

    >>> import numpy as np
    >>> ks = [torch.randn(n, 2, 16) for n in (5, 3, 1)]  # a root of 5 tokens with two leaves of 3 and 1
    >>> tree = PagedTree.from_nodes([-1, 0, 0], ks, ks, page_size=4)
    >>> tree_attention(torch.randn(2, 4, 16), tree, backend="torch").shape
    torch.Size([2, 4, 16])
    """
    if not isinstance(tree, PagedTree):
        raise TypeError(f"tree must be a PagedTree, got {type(tree).__name__}")
    check_tensor("q", q, ndim=3)
    check_dim("q", q, 0, tree.n_leaves, "n_leaves: one query row per leaf of tree, in preorder")
    check_dim("q", q, 2, tree.head_dim, "head_dim, as tree.k_pool.shape[3]")
    check_gqa(q.shape[1], tree.kv_heads, "q", "tree")
    if q.dtype != tree.k_pool.dtype:
        raise TypeError(f"q must have the tree's dtype {tree.k_pool.dtype}, got {q.dtype}")
    if q.device != tree.k_pool.device:
        raise ValueError(f"q must be on the tree's device {tree.k_pool.device}, got {q.device}")
    if cost is not None and not isinstance(cost, CostModel):
        raise TypeError(f"cost must be a CostModel or None, got {type(cost).__name__}")
    if backend not in TREE_BACKENDS:
        raise ValueError(f"backend must be one of {TREE_BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = resolve_backend("auto", q)
        if backend == "tk":
            from . import tk_tree

            try:
                tk_tree.ops()
            except RuntimeError:  # an extension (e.g. prebuilt objects) without the tree family
                backend = "torch"
    if backend == "tk":
        resolve_backend("tk", q)  # a clear error without CUDA q, a bf16/fp16 dtype, D 64/128, the extension or sm_90
        from . import tk_tree

        return tk_tree.tree_attention(q, tree, tree.plan(q.shape[1], cost))
    return tree_attention_torch(q, tree, tree.plan(q.shape[1], cost))


def gather_plan_kv(tree: PagedTree, plan: TreePlan) -> tuple[torch.Tensor, torch.Tensor]:
    """K and V of every token the plan reads, (kv_tokens_read, Hkv, D) each, in segment order (so item i's tokens are
    one contiguous range): each token is read from the pool once, through the page table."""
    seg_len, n = plan.seg_len.long(), plan.kv_tokens_read

    def per_token(x: torch.Tensor) -> torch.Tensor:  # output_size given: no device sync (graph-capturable)
        return torch.repeat_interleave(x.long(), seg_len, output_size=n)

    t = torch.arange(n, device=seg_len.device) - per_token(torch.cumsum(seg_len, 0) - seg_len)
    pos = per_token(plan.seg_slot) + t
    page = plan.page_table.long()[per_token(plan.seg_page) + pos // tree.page_size]
    slot = pos % tree.page_size
    return tree.k_pool[page, :, slot], tree.v_pool[page, :, slot]


def tree_attention_torch(q: torch.Tensor, tree: PagedTree, plan: TreePlan) -> torch.Tensor:
    """Executes the work list: per item, its stacked rows against its segments' KV → (o, lse) partial rows; per leaf,
    the LSE merge of its partials. Partials start as NaN, so a partial row no item writes poisons its leaf."""
    acc = reference.acc_dtype(q.dtype)
    k, v = gather_plan_kv(tree, plan)
    part_o = q.new_full((plan.n_partials, *q.shape[1:]), float("nan"), dtype=acc)
    part_lse = q.new_full((plan.n_partials, q.shape[1]), float("nan"), dtype=acc)
    h = plan.host
    seg_tok = torch.cumsum(torch.as_tensor(h["seg_len"]), 0).tolist()  # host ints: no device sync per item
    for i in range(plan.n_items):
        r0, r1, p0 = int(h["item_row_start"][i]), int(h["item_row_end"][i]), int(h["item_partial_offset"][i])
        s0, s1 = int(h["item_seg_offset"][i]), int(h["item_seg_offset"][i + 1])
        t0, t1 = (seg_tok[s0 - 1] if s0 else 0), seg_tok[s1 - 1]
        o, lse = reference.attention_with_lse(q[r0:r1].to(acc)[None], k[t0:t1][None], v[t0:t1][None])
        part_o[p0:p0 + r1 - r0], part_lse[p0:p0 + r1 - r0] = o[0], lse[0]
    return merge_leaf_partials(part_o, part_lse, plan).to(q.dtype)


def merge_leaf_partials(part_o: torch.Tensor, part_lse: torch.Tensor, plan: TreePlan) -> torch.Tensor:
    """o[r] = Σ_p exp(lse_p - logsumexp_p lse_p) o_p over leaf r's partial rows (leaf_partial_offset/index), all
    leaves at once (padded to max_leaf_partials)."""
    off = plan.leaf_partial_offset.long()
    slot = off[:-1, None] + torch.arange(plan.max_leaf_partials, device=off.device)
    valid = slot < off[1:, None]
    pid = plan.leaf_partial_index.long()[slot.clamp(max=plan.n_partials - 1)]
    lse_all = torch.where(valid[..., None], part_lse[pid], float("-inf"))  # (rows, M, Hq)
    lse = torch.logsumexp(lse_all, dim=1)
    w = torch.exp(lse_all - lse[:, None])
    return torch.where(valid[..., None, None], w[..., None] * part_o[pid], 0).sum(1)
