"""`backend="tk"` tree attention: the ThunderKittens kernels of kernels/tree/ executing a `TreePlan` over a `PagedTree`.

One decode step is three launches and no host sync: ``tree_attend`` runs the plan's MMA items (a persistent wgmma grid
over its (item, kv-head, row pass) units, in the plan's cost order) and, concurrently on a second stream, its decode
items (a warp per unit: leaves and nodes of a few stacked rows); each unit's stacked query rows against its KV
segments, read in place through the page table, into (o, lse) partial rows (o in q's dtype, lse float32); then
``tree_merge`` (the LSE merge of each leaf row's partials, written in q's dtype). The plan's int32 tensors are passed
as they are (sliced views): nothing is derived per step.

Checked on the H200 by tests/gpu/test_tk_tree.py (float64 oracle, NaN poison, compute-sanitizer); design and
measurements: docs/design.md, "Tree attention".

Example (needs a Hopper GPU and the built kernels)::

    tree = PagedTree.from_nodes(parents, node_ks, node_vs, page_size=16)     # K/V (len, Hkv, D) on "cuda"
    o = tree_attention(q, tree, backend="tk")                                # q (n_leaves, Hq, D)
"""
from __future__ import annotations

import torch

from .tree_plan import PagedTree, TreePlan

HEAD_DIMS = (64, 128)
DTYPES = (torch.bfloat16, torch.float16)

_OPS = None


def ops():
    """The kernel entry points (`tree_attend`, `tree_merge`) of the tkprefix extension (:mod:`tkprefix.build`, the one
    loader: kernels/tree compiled here, or prebuilt objects from $TKPREFIX_PREBUILT_OBJECTS)."""
    global _OPS
    if _OPS is None:
        from . import build

        ext = build.load_extension()
        if not getattr(ext, "has_tree_ops", False):
            raise RuntimeError("the tkprefix extension was built without the tree family: include tree in "
                               "TKPREFIX_FAMILIES (or unset it), or rebuild the prebuilt objects "
                               "(`bash scripts/ci_image_stack.sh kernels`)")
        _OPS = ext
    return _OPS


def _check(q: torch.Tensor, tree: PagedTree) -> None:
    if not q.is_cuda:
        raise ValueError(f"q must be a CUDA tensor for the TK tree kernels, got device {q.device}")
    if q.dtype not in DTYPES:
        raise TypeError(f"q must be bfloat16 or float16 for the TK tree kernels, got {q.dtype}")
    if q.shape[2] not in HEAD_DIMS:
        raise ValueError(f"q head_dim must be one of {HEAD_DIMS} for the TK tree kernels, got {q.shape[2]}")
    for name in ("k_pool", "v_pool"):
        t = getattr(tree, name)
        if not t.is_contiguous():
            raise ValueError(f"tree.{name} must be contiguous for the TK tree kernels")
        if t.data_ptr() % 16:
            raise ValueError(f"tree.{name} must be 16-byte aligned (the kernel reads K/V rows with 16-byte loads)")


def _check_plan(q: torch.Tensor, tree: PagedTree, plan: TreePlan) -> None:
    """The kernel trusts the plan's indices: a plan of another tree or head count would read or write out of bounds."""
    if not isinstance(plan, TreePlan):
        raise TypeError(f"plan must be a TreePlan (tree.plan(q_heads)), got {type(plan).__name__}")
    if plan.host["page_table"] is not tree.page_table:
        raise ValueError("plan must be a plan of this tree (tree.plan(q_heads)): its page table is another tree's")
    if q.ndim != 3 or q.shape[0] != plan.n_rows or q.shape[1] != plan.group * tree.kv_heads:
        raise ValueError(f"q must be (n_rows={plan.n_rows}, plan.group * tree.kv_heads="
                         f"{plan.group * tree.kv_heads}, D), as the plan was built for, got {tuple(q.shape)}")


def consumers_for(plan: TreePlan) -> int:
    """Consumer warpgroups per block of the MMA kernel, as the plan chose them (`TreePlan.consumers`): 1 (64 stacked
    rows, two blocks per SM) when every MMA item fits 64 rows or its units are mostly short, else 2 (128 rows)."""
    return plan.consumers


_SIDE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def _side_stream(device: torch.device) -> torch.cuda.Stream:
    """One extra stream per device for the decode kernel, created once (a new stream per call would leak)."""
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return _SIDE_STREAMS[device]


def tree_attention(q: torch.Tensor, tree: PagedTree, plan: TreePlan, return_lse: bool = False,
                   consumers: int | None = None, max_blocks: int = 0, poison: float | None = None,
                   overlap: bool = True):
    """One decode step on a Hopper GPU: q (n_leaves, Hq, D) (checked by `tkprefix.tree_attention.tree_attention`) →
    o (n_leaves, Hq, D) in q's dtype (and lse (n_leaves, Hq) float32, natural log, if return_lse). bf16 or fp16,
    D 64 or 128, any page size, any GQA ratio.

    consumers: 1 or 2 consumer warpgroups (None: `consumers_for(plan)`); max_blocks: the wgmma kernel's grid (0: the
    plan's, `plan.mma_blocks`, when the decode kernel runs beside it, else as many blocks as fit). overlap: run the
    wgmma items and the decode items on two streams at once (False: one after the other on the current stream).
    poison: tests only -- fill the partial and output buffers with this value first, so that an unwritten row
    shows."""
    _check_plan(q, tree, plan)
    _check(q, tree)
    if consumers is None:
        consumers = consumers_for(plan)
    if consumers not in (1, 2):
        raise ValueError(f"consumers must be 1 or 2 (or None), got {consumers!r}")
    if isinstance(max_blocks, bool) or not isinstance(max_blocks, int) or max_blocks < 0:
        raise ValueError(f"max_blocks must be an int >= 0, got {max_blocks!r}")
    q = q.contiguous()
    if q.data_ptr() % 16:
        q = q.clone()  # the kernel reads query rows with 16-byte loads
    hq, d = q.shape[1], q.shape[2]
    part_o = torch.empty((plan.n_partials, hq, d), dtype=q.dtype, device=q.device)  # half the bytes of float32
    part_lse = torch.empty((plan.n_partials, hq), dtype=torch.float32, device=q.device)
    out = torch.empty_like(q)
    lse = torch.empty((q.shape[0], hq), dtype=torch.float32, device=q.device) if return_lse else None
    if poison is not None:
        for t in (part_o, part_lse, out, lse):
            if t is not None:
                t.fill_(poison)
    main = torch.cuda.current_stream(q.device)
    ext = ops()
    pass_rows = 1 if plan.max_decode_rows * plan.group <= 1 else 2  # 1: the decode kernel unrolls deeper

    def attend(lo: int, hi: int, n_mma: int, stream) -> None:  # items [lo, hi), the first n_mma on the wgmma kernel
        ext.tree_attend(q, tree.k_pool, tree.v_pool, plan.item_row_start[lo:hi], plan.item_row_end[lo:hi],
                        plan.item_seg_offset[lo:hi + 1], plan.item_partial_offset[lo:hi], plan.mma_units,
                        plan.seg_page, plan.seg_slot, plan.seg_len, plan.page_table, part_o, part_lse, n_mma,
                        pass_rows, consumers, stream.cuda_stream, max_blocks)

    n, n_mma = plan.n_items, plan.n_mma_items
    if overlap and 0 < n_mma < n:
        max_blocks = max_blocks or plan.mma_blocks
        # the wgmma kernel (one big block per SM) and the decode kernel (small blocks, memory-bound) run concurrently:
        # decode blocks fill what the wgmma blocks leave of each SM, and the SMs a capped wgmma grid leaves them.
        # Fork/join by events, so a CUDA graph captures it.
        side = _side_stream(q.device)
        side.wait_stream(main)
        attend(0, n_mma, n_mma, main)
        attend(n_mma, n, 0, side)
        main.wait_stream(side)  # part_o/part_lse are read (and freed) on main only after this
    else:
        attend(0, n, n_mma, main)
    ext.tree_merge(part_o, part_lse, plan.leaf_partial_offset, plan.leaf_partial_index, out, lse, main.cuda_stream)
    return (out, lse) if return_lse else out
