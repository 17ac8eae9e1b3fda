"""Tree-decode peers: FastTree, DeFT and SGLang's Triton decode kernel (from the FastTree artifact), and FlashInfer's
plain paged decode (no cascade).

Every adapter here reads K/V *in place* from one token store holding every tree node once (``(tokens, Hkv, D)``, node
``i`` at ``offsets[i]``), the layout a serving system's radix / paged cache has; they differ in how they plan the reads:

* ``fasttree`` (MLSys 2025, ``PanZaifeng/FastTree-Artifact`` ``kernel_bench/fasttree.py``): the artifact's own
  ``fasttree_preparation`` (its cost-model tree partition, tile choice and KV split) and ``fasttree_decode`` (two Triton
  launches + merge), called with the defaults of its ``benchmark.py`` (alpha 0.66, beta 0.33, gamma 0.1, KV tiles
  32/32, KV splits 1024/128, parallelism thresholds 132/528 and 132/132, q tiles 64/16 divided by the GQA group). The
  kernel is launched with the tile sizes the planner settled on (``params.TSQs`` / ``TSKs`` after planning).
* ``deft`` (ICLR 2025, the same artifact's ``kernel_bench/DeFT.py``): the artifact's ``DeFT_preparation`` (subtrees
  of 128 tokens, 64-query bitmasks) and ``DeFT_decode`` (q tile 64/group, KV tile 32). The planner indexes a padded
  per-request cache ``(B, max_len)``; its KV index table is remapped here, outside the timed region, to the same
  token store (equal tokens, no padded copy in memory). Its kernel hard-codes float16.
* ``sglang_triton``: ``decode_attention_fwd`` of ``sglang==0.2.13`` (``sglang/srt/layers/decode_attention.py``; the
  version the artifact pins and its ``kernel_bench/sglang_triton.py`` calls), with a ``req_to_token`` table pointing
  every request's positions into the token store (SGLang's radix cache: shared tokens stored once, read per request).
* ``flashinfer_decode``: ``flashinfer.BatchDecodeWithPagedKVCacheWrapper`` over pages that every sequence under a
  node references (what a vLLM user gets with prefix caching and cascade off): page size 16 where every inner node
  is a multiple of 16 tokens, else 1 (a page may only be partial at the end of a sequence). Tensor-core decode, as
  vLLM's FlashInfer backend sets it since vllm-project/vllm#23214 (vLLM's ``auto`` then picks FlashInfer's fa2
  kernels; here the sm90 "fa3" ones, the JIT module the cascade adapter already builds, which spares another
  minutes-long JIT build on the device).

FlashInfer runs the dtypes in ``$TKPREFIX_FLASHINFER_DTYPES`` (default ``bfloat16,float16``; each dtype is one JIT
module of minutes on first use, built by ``tkprefix.bench.fi_prewarm`` before the timed run).

The artifact is extracted (never committed) by ``scripts/bench/extract_tree_peers.sh`` into
``third_party/FastTree-Artifact`` (or ``$FASTTREE_ARTIFACT_ROOT``); its ``COMMIT`` is recorded in every row's note.
A level case (configurations 1-5) is a tree too: level 0 (one row) is the root, each level's rows hang under the row
of the level above that holds their sequences, and each sequence's suffix is a leaf.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import math
import os
import sys
import types
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from .cases import Case
from .inputs import Inputs
from .peers import REGISTRY, Impl, Prepared, Unsupported, sharing_extra

__all__ = ["NodeTable", "node_table", "artifact_root", "artifact_commit", "TREE_PEERS", "FastTree", "DeFT",
           "SglangTriton", "FlashInferDecode"]

REPO_ROOT = Path(__file__).resolve().parents[3]


def artifact_root() -> Path:
    return Path(os.environ.get("FASTTREE_ARTIFACT_ROOT") or REPO_ROOT / "third_party" / "FastTree-Artifact")


def artifact_kernel() -> Path:
    """FastTree's kernel file in the artifact: its presence means the artifact was carried."""
    return artifact_root() / "kernel_bench" / "fasttree.py"


def artifact_commit() -> str | None:
    p = artifact_root() / "COMMIT"
    return p.read_text().strip() if p.exists() else None


# --------------------------------------------------------------------------------------------------------------------
# A case as a tree of nodes over one token store
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class NodeTable:
    """Nodes in an order where every parent precedes its children (node 0 is the root of every request).

    ``blocks`` hold the K/V of consecutive nodes of one length: block j is ``(rows, P, Hkv, D)`` for nodes
    ``block_first[j] .. block_first[j] + rows - 1``. ``req_range[i]`` is the half-open range of requests (batch rows)
    under node i; ``paths[b]`` the nodes of request b from the root."""

    parents: list[int]
    lengths: list[int]
    req_range: list[tuple[int, int]]
    paths: list[list[int]]
    blocks: list[tuple[torch.Tensor, torch.Tensor]]
    block_first: list[int]

    @cached_property
    def offsets(self) -> list[int]:
        out = [0]
        for n in self.lengths:
            out.append(out[-1] + n)
        return out

    @property
    def num_children(self) -> list[int]:
        c = [0] * len(self.parents)
        for p in self.parents[1:]:
            c[p] += 1
        return c

    def store(self) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of every node once, in node order: ``(tokens, Hkv, D)`` each."""
        k = torch.cat([bk.reshape(-1, *bk.shape[2:]) for bk, _ in self.blocks])
        v = torch.cat([bv.reshape(-1, *bv.shape[2:]) for _, bv in self.blocks])
        return k, v

    def path_len(self, b: int) -> int:
        return sum(self.lengths[i] for i in self.paths[b])

    def positions(self, b: int) -> torch.Tensor:
        """The node-store index of each position of request b (its root-to-leaf path), int64."""
        offsets = self.offsets
        return torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i in self.paths[b]])


def node_table(case: Case, inp: Inputs | None = None, rooted: bool = True) -> NodeTable | str:
    """The case as a :class:`NodeTable` (tensors from ``inp``; None leaves ``blocks`` empty), or why it is not a
    rooted tree (``rooted=False`` also takes a forest: level-0 rows are roots)."""
    B = case.batch
    if case.tree is not None:
        t = case.tree
        blocks = [] if inp is None else [(inp.node_ks[i][None], inp.node_vs[i][None]) for i in range(t.n_nodes)]
        return NodeTable(list(t.parents), list(t.lengths), list(t.leaf_range), [t.path(b) for b in range(B)],
                         blocks, list(range(t.n_nodes)) if inp is not None else [])
    levels = list(case.levels) + ([(B, case.suffix)] if case.suffix else [])
    if rooted and (not levels or levels[0][0] != 1):
        return "no prefix shared by every sequence (a tree needs one root node)"
    parents: list[int] = []
    lengths: list[int] = []
    req_range: list[tuple[int, int]] = []
    first: list[int] = []
    for d, (rows, n) in enumerate(levels):
        if d and rows % levels[d - 1][0]:
            return f"levels {levels[d - 1][0]} then {rows} rows do not nest (each row needs one parent row)"
        first.append(len(parents))
        per = B // rows
        for r in range(rows):
            parents.append(-1 if d == 0 else first[d - 1] + r // (rows // levels[d - 1][0]))
            lengths.append(n)
            req_range.append((r * per, (r + 1) * per))
    paths = [[first[d] + b // (B // rows) for d, (rows, _) in enumerate(levels)] for b in range(B)]
    blocks: list[tuple[torch.Tensor, torch.Tensor]] = []
    if inp is not None:
        blocks = list(zip(inp.shared_ks, inp.shared_vs)) + ([(inp.k, inp.v)] if case.suffix else [])
    return NodeTable(parents, lengths, req_range, paths, blocks, first if inp is not None else [])


def _tree_info(table: NodeTable) -> list[Any]:
    """The artifact's tree description (``kv_tree_simple.KVTreeNode`` fields) of a node table."""
    kids = table.num_children
    out = []
    for i, (p, n, (lo, hi)) in enumerate(zip(table.parents, table.lengths, table.req_range)):
        out.append(types.SimpleNamespace(parent=p, id=i, seqlen=n, num_children=kids[i], requests=list(range(lo, hi))))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Loading the artifact (git-ignored third_party/, carried to the GPU machine)
# --------------------------------------------------------------------------------------------------------------------
_MODULES: dict[str, Any] = {}


def _artifact_reason() -> str | None:
    root = artifact_root()
    if not artifact_kernel().exists():
        return (f"FastTree artifact not found at {root} (run scripts/bench/extract_tree_peers.sh and carry "
                "third_party/FastTree-Artifact)")
    try:
        importlib.import_module("triton")
    except Exception as e:  # noqa: BLE001
        return f"triton not importable ({type(e).__name__}: {e})"
    return None


def _load(name: str, path: Path) -> Any:
    """Import one artifact file as module ``tkprefix_peer_<name>`` (its directory on sys.path for its own imports)."""
    if name in _MODULES:
        return _MODULES[name]
    d = str(path.parent)
    if d not in sys.path:
        sys.path.insert(0, d)
    spec = importlib.util.spec_from_file_location(f"tkprefix_peer_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    _MODULES[name] = mod
    return mod


def _load_sglang() -> Any:
    """sglang 0.2.13's decode_attention.py; its one sglang import (``global_server_args_dict``, read for
    ``attention_reduce_in_fp32``, default off) is given an empty dict when sglang itself is not installed."""
    if ("sglang" not in _MODULES and "sglang.srt.managers.schedule_batch" not in sys.modules
            and importlib.util.find_spec("sglang") is None):
        for name in ("sglang", "sglang.srt", "sglang.srt.managers"):
            sys.modules.setdefault(name, types.ModuleType(name))
        stub = types.ModuleType("sglang.srt.managers.schedule_batch")
        stub.global_server_args_dict = {}  # type: ignore[attr-defined]
        sys.modules.setdefault("sglang.srt.managers.schedule_batch", stub)
    return _load("sglang", artifact_root() / "sglang" / "srt" / "layers" / "decode_attention.py")


def _note(dtype: torch.dtype, what: str) -> str:
    return f"{what} @ FastTree-Artifact {(artifact_commit() or '?')[:12]}; {str(dtype).replace('torch.', '')}"


def _q_tiles(group: int) -> tuple[int, int] | None:
    """The artifact's run_benchmark.sh q tiles (64, 16) for group 1, (16, 4) for 4, (4, 1) for 16: 64/g and 16/g."""
    if group < 1 or group > 16 or group & (group - 1):
        return None
    return 64 // group, 16 // group


# --------------------------------------------------------------------------------------------------------------------
# FastTree
# --------------------------------------------------------------------------------------------------------------------
FASTTREE_MAX_POOL_ELEMENTS = 2**31  # its int32 offsets: kv_entries (int32) * stride_k0 overflows beyond


class FastTree(Impl):
    name = "fasttree"
    trees = True

    def unavailable_reason(self, case: Case) -> str | None:
        r = _artifact_reason()
        if r:
            return r
        if _q_tiles(case.group) is None:
            return f"GQA group {case.group}: FastTree's q tiles (64/g, 16/g) need a power-of-two group <= 16"
        if case.head_dim not in (16, 32, 64, 128, 256):
            return f"head_dim {case.head_dim}: FastTree's kernel takes 16, 32, 64, 128 or 256"
        t = node_table(case)
        if isinstance(t, str):
            return t
        elements = sum(t.lengths) * case.kv_heads * case.head_dim
        if elements >= FASTTREE_MAX_POOL_ELEMENTS:
            return (f"FastTree's kernel indexes K/V in int32 (kv entry x token stride, kernel_bench/fasttree.py): this "
                    f"pool has {elements:,} elements >= 2^31 (on the H200 such cases hit an illegal memory access)")
        return None

    def extra_bytes(self, case: Case) -> int:
        t = node_table(case)
        tokens = sum(t.lengths) if not isinstance(t, str) else 0
        return tokens * case.kv_heads * case.head_dim * 2 * 2 + 3 * case.batch * case.q_heads * case.head_dim * 4 * 8

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        ft = _load("fasttree", artifact_root() / "kernel_bench" / "fasttree.py")
        table = node_table(case, inp)
        if isinstance(table, str):
            raise Unsupported(table)
        K, V = table.store()
        aux, tiles_q, tiles_k = fasttree_plan(ft, table, case)
        q = inp.q.reshape(case.batch, case.q_heads, case.head_dim).contiguous()
        o = torch.full_like(q, float("nan"))  # poisoned: an element the kernel leaves unwritten fails the check
        sm_scale = 1.0 / math.sqrt(case.head_dim)

        def run() -> torch.Tensor:
            ft.fasttree_decode(q, K, V, o, *aux, tiles_q, tiles_k, sm_scale)
            return o

        kv_read = int(aux[2].sum().item())  # vnode_to_kv_lens: tokens each virtual node reads (per kv-head)
        return Prepared(run=run, canonical=lambda out: out, state=(K, V, q, o, aux),
                        note=_note(q.dtype, f"q tiles {tiles_q}, kv tiles {tiles_k}"),
                        extra=sharing_extra(case, kv_read))


def fasttree_plan(ft: Any, table: NodeTable, case: Case) -> tuple[list, list[int], list[int]]:
    """The artifact's planner with its benchmark.py defaults → (the decode's table arguments, q tiles, kv tiles)."""
    params = ft.FastTreeParams()
    params.set_values(0.66, 0.33, 0.1)
    params.set_q_tile_sizes(list(_q_tiles(case.group)))
    params.set_kv_tile_sizes([32, 32])
    params.set_kv_group_num(case.group)
    with contextlib.redirect_stdout(io.StringIO()):  # the planner prints its choices
        aux, _assign = ft.fasttree_preparation(_tree_info(table), table.offsets, case.batch, case.q_heads,
                                               case.kv_heads, case.head_dim, [1024, 128], [132, 528], [132, 132],
                                               params)
    return list(aux), list(params.TSQs), list(params.TSKs)


# --------------------------------------------------------------------------------------------------------------------
# DeFT
# --------------------------------------------------------------------------------------------------------------------
DEFT_SUBTREE, DEFT_MASK = 128, 64
DEFT_MAX_PLAN_WORK = 3e8  # Python steps of the artifact's planner (O(subtrees · queries²) membership tests)


def _deft_plan_work(table: NodeTable) -> float:
    return sum((n / DEFT_SUBTREE + 1) * (hi - lo) ** 2 / 2 for n, (lo, hi) in zip(table.lengths, table.req_range)) \
        + len(table.parents) ** 2


class DeFT(Impl):
    name = "deft"
    trees = True

    def unavailable_reason(self, case: Case) -> str | None:
        r = _artifact_reason()
        if r:
            return r
        if case.dtype != "float16":
            return "DeFT's kernel hard-codes float16 (P and its outputs are cast to tl.float16): float16 rows only"
        if _q_tiles(case.group) is None:
            return f"GQA group {case.group}: DeFT's q tile (64/g) needs a power-of-two group <= 16"
        t = node_table(case)
        if isinstance(t, str):
            return t
        work = _deft_plan_work(t)
        if work > DEFT_MAX_PLAN_WORK:
            return (f"trimmed: DeFT's host planner (the artifact's Python, O(subtrees x queries^2)) needs ~{work:.1e} "
                    "steps here (minutes)")
        return None

    def extra_bytes(self, case: Case) -> int:
        t = node_table(case)
        tokens = sum(t.lengths) if not isinstance(t, str) else 0
        return tokens * case.kv_heads * case.head_dim * 2 * 2 * 2 + 3 * case.batch * case.q_heads * case.head_dim * 4 * 8

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        deft = _load("deft", artifact_root() / "kernel_bench" / "DeFT.py")
        table = node_table(case, inp)
        if isinstance(table, str):
            raise Unsupported(table)
        K, V = table.store()
        B = case.batch
        aux = deft_plan(deft, table, case)
        q = inp.q.reshape(B, case.q_heads, case.head_dim).contiguous()
        o = torch.full_like(q, float("nan"))  # poisoned: an element the kernel leaves unwritten fails the check
        q_tile = _q_tiles(case.group)[0]
        sm_scale = 1.0 / math.sqrt(case.head_dim)

        def run() -> torch.Tensor:
            deft.DeFT_decode(q, K, V, o, *aux, q_tile, 32, sm_scale, DEFT_MASK)
            return o

        # each subtree's tokens are read once per q tile of its queries (the kernel loops q tiles inside one program)
        kv_read = int((aux[2].long() * ((aux[5].long() + q_tile - 1) // q_tile)).sum().item())
        return Prepared(run=run, canonical=lambda out: out, state=(K, V, q, o, aux),
                        note=_note(q.dtype, f"subtree {DEFT_SUBTREE}, q tile {q_tile}, kv tile 32"),
                        extra=sharing_extra(case, kv_read))


def deft_plan(deft: Any, table: NodeTable, case: Case) -> list:
    """The artifact's planner (subtrees of 128 tokens, 64-query masks) with its KV index table remapped from the padded
    per-request cache it assumes to the node store → the decode's table arguments."""
    B = case.batch
    max_len = max(table.path_len(b) for b in range(B))
    deft.cur_length = 0  # the planner keeps a module-level running length between calls
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        aux = list(deft.DeFT_preparation(_tree_info(table), torch.empty(B, max_len, 0, device="meta"),
                                         DEFT_SUBTREE, DEFT_MASK, case.q_heads, case.head_dim))
    finally:
        sys.setrecursionlimit(limit)
    aux[0] = remap_padded_entries(aux[0], table, max_len)
    return aux


def remap_padded_entries(entries: torch.Tensor, table: NodeTable, max_len: int) -> torch.Tensor:
    """DeFT's KV index ``r · max_len + p`` (position p of request r in a padded per-request cache) → the index of that
    token in the node store; negative entries (the artifact's padding) stay."""
    e = entries.to(torch.int64).cpu()
    valid = e >= 0
    reqs = torch.unique(e[valid] // max_len).tolist()
    base, tables = {}, []
    at = 0
    for r in reqs:
        pos = table.positions(r)
        base[r] = at
        tables.append(pos)
        at += len(pos)
    flat = torch.cat(tables) if tables else torch.zeros(0, dtype=torch.int64)
    r_of = e[valid] // max_len
    lut = torch.zeros(int(r_of.max()) + 1 if len(r_of) else 1, dtype=torch.int64)
    for r, b0 in base.items():
        lut[r] = b0
    out = e.clone()
    out[valid] = flat[lut[r_of] + e[valid] % max_len]
    return out.to(torch.int32).to(entries.device)


# --------------------------------------------------------------------------------------------------------------------
# SGLang 0.2.13's Triton decode kernel
# --------------------------------------------------------------------------------------------------------------------
def req_to_token(table: NodeTable, batch: int) -> tuple[torch.Tensor, list[int]]:
    """Per request, the node-store index of each of its positions ``(B, max_len)`` (int64, 0-padded) and the lengths."""
    lens = [table.path_len(b) for b in range(batch)]
    out = torch.zeros(batch, max(lens), dtype=torch.int64)
    for b in range(batch):
        out[b, : lens[b]] = table.positions(b)
    return out, lens


class SglangTriton(Impl):
    name = "sglang_triton"
    trees = True

    def unavailable_reason(self, case: Case) -> str | None:
        r = _artifact_reason()
        if r:
            return r
        if not (artifact_root() / "sglang" / "srt" / "layers" / "decode_attention.py").exists():
            return "sglang 0.2.13 decode_attention.py not extracted (scripts/bench/extract_tree_peers.sh)"
        if case.head_dim not in (16, 32, 64, 128, 256):
            return f"head_dim {case.head_dim}: SGLang's kernel takes 16, 32, 64, 128 or 256"
        t = node_table(case, rooted=False)
        return t if isinstance(t, str) else None

    def extra_bytes(self, case: Case) -> int:
        t = node_table(case, rooted=False)
        if isinstance(t, str):
            return 0
        keys = case.key_sum
        return sum(t.lengths) * case.kv_heads * case.head_dim * 2 * 2 + keys * (case.q_heads * 2 + 8)

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        sg = _load_sglang()
        table = node_table(case, inp, rooted=False)
        if isinstance(table, str):
            raise Unsupported(table)
        dev = inp.q.device
        K, V = table.store()
        B = case.batch
        r2t, lens = req_to_token(table, B)
        r2t = r2t.to(dev)
        b_req_idx = torch.arange(B, device=dev)
        b_seq_len = torch.tensor(lens, dtype=torch.int32, device=dev)
        b_start_loc = torch.tensor([0] + lens[:-1], device=dev).cumsum(0)
        total = sum(lens)
        att_m = torch.empty(case.q_heads, total, dtype=sg.REDUCE_TORCH_TYPE, device=dev)
        q = inp.q.reshape(B, case.q_heads, case.head_dim).contiguous()
        o = torch.full_like(q, float("nan"))  # poisoned: an element the kernel leaves unwritten fails the check
        sm_scale = 1.0 / math.sqrt(case.head_dim)

        def run() -> torch.Tensor:
            sg.decode_attention_fwd(q, K, V, o, r2t, b_req_idx, b_start_loc, b_seq_len, max(lens), total, sm_scale,
                                    att_m=att_m)
            return o

        return Prepared(run=run, canonical=lambda out: out, state=(K, V, q, o, r2t, att_m),
                        note=f"sglang 0.2.13 decode_attention_fwd; logits in {sg.REDUCE_TORCH_TYPE}; "
                             f"{str(q.dtype).replace('torch.', '')}",
                        extra=sharing_extra(case, total))


# --------------------------------------------------------------------------------------------------------------------
# FlashInfer plain paged decode (no cascade)
# --------------------------------------------------------------------------------------------------------------------
def decode_pages(table: NodeTable, page_size: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Paged layout where each node owns ``ceil(len / page_size)`` pages (node order) and every request lists its
    path's pages: (node_first_page, kv_indptr, kv_indices, last_page_len). Every node that is not last on a path must
    fill its pages (a decode page table may only end partially)."""
    first, at = [], 0
    for n in table.lengths:
        first.append(at)
        at += -(-n // page_size)
    indptr, indices, last = [0], [], []
    for path in table.paths:
        for i in path[:-1]:
            if table.lengths[i] % page_size:
                raise ValueError(f"page_size: node {i} ({table.lengths[i]} tokens) is inside a path and not a "
                                 f"multiple of {page_size}")
        for i in path:
            indices.extend(range(first[i], first[i] + -(-table.lengths[i] // page_size)))
        indptr.append(len(indices))
        n = table.lengths[path[-1]]
        last.append(n - (-(-n // page_size) - 1) * page_size)
    return first, indptr, indices, last


def decode_pool(table: NodeTable, page_size: int) -> tuple[torch.Tensor, list[int], list[int], list[int]]:
    """The paged cache ``(pages, 2, page_size, Hkv, D)`` (NHD; each node's tokens from the start of its own pages,
    zero-padded) and the decode page table (kv_indptr, kv_indices, last_page_len) of :func:`decode_pages`."""
    first, indptr, indices, last = decode_pages(table, page_size)
    bk0 = table.blocks[0][0]
    n_pages = first[-1] + -(-table.lengths[-1] // page_size)
    pool = torch.zeros(n_pages, 2, page_size, *bk0.shape[2:], dtype=bk0.dtype, device=bk0.device)
    for (bk, bv), f in zip(table.blocks, table.block_first):  # a block: rows nodes of P tokens, pages in order
        rows, P = bk.shape[0], bk.shape[1]
        npg = -(-P // page_size)
        for j, src in ((0, bk), (1, bv)):
            src = torch.nn.functional.pad(src, (0, 0, 0, 0, 0, npg * page_size - P))
            pool[first[f]:first[f] + rows * npg, j].copy_(src.reshape(rows * npg, page_size, *src.shape[2:]))
    return pool, indptr, indices, last


def decode_page_size(table: NodeTable) -> int:
    inner = {i for p in table.paths for i in p[:-1]}
    return 16 if all(table.lengths[i] % 16 == 0 for i in inner) else 1


def flashinfer_dtype_reason(case: Case) -> str | None:
    """None if FlashInfer runs this case's dtype in this run ($TKPREFIX_FLASHINFER_DTYPES), else the reason."""
    dtypes = [d.strip() for d in os.environ.get("TKPREFIX_FLASHINFER_DTYPES", "bfloat16,float16").split(",")]
    if case.dtype in dtypes:
        return None
    return (f"trimmed: FlashInfer runs {', '.join(dtypes)} in this run (TKPREFIX_FLASHINFER_DTYPES; a {case.dtype} "
            "JIT module takes minutes to build on the device)")


class FlashInferDecode(Impl):
    """``flashinfer.BatchDecodeWithPagedKVCacheWrapper`` with tensor cores (vLLM's setting) on the sm90 backend (the
    prefill module the cascade adapter builds; the artifact's ``flashinfer_wrap.py`` took tensor cores only with GQA),
    every sequence's page table listing the shared pages of its path; planned once (untimed), CUDA-graph capturable."""

    name = "flashinfer_decode"
    trees = True

    def unavailable_reason(self, case: Case) -> str | None:
        try:
            importlib.import_module("flashinfer")
        except Exception as e:  # noqa: BLE001
            return f"flashinfer not importable ({type(e).__name__}: {e})"
        r = flashinfer_dtype_reason(case)
        if r:
            return r
        t = node_table(case, rooted=False)
        return t if isinstance(t, str) else None

    def extra_bytes(self, case: Case) -> int:
        t = node_table(case, rooted=False)
        if isinstance(t, str):
            return 0
        return (sum(t.lengths) + 16 * len(t.lengths)) * case.kv_heads * case.head_dim * 2 * 2 + (256 << 20)

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        import flashinfer

        table = node_table(case, inp, rooted=False)
        if isinstance(table, str):
            raise Unsupported(table)
        dev, B, Hkv, D = inp.q.device, case.batch, case.kv_heads, case.head_dim
        ps = decode_page_size(table)
        pool, indptr, indices, last = decode_pool(table, ps)
        i32 = dict(dtype=torch.int32, device=dev)
        bufs = [torch.tensor(x, **i32) for x in (indptr, indices, last)]
        workspace = torch.empty(128 << 20, dtype=torch.uint8, device=dev)
        backend = "fa3" if torch.cuda.get_device_capability(dev)[0] == 9 else "auto"
        w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
            workspace, "NHD", use_cuda_graph=True, use_tensor_cores=True, paged_kv_indptr_buffer=bufs[0],
            paged_kv_indices_buffer=bufs[1], paged_kv_last_page_len_buffer=bufs[2], backend=backend)
        w.plan(bufs[0], bufs[1], bufs[2], case.q_heads, Hkv, D, ps, q_data_type=inp.q.dtype,
               kv_data_type=inp.q.dtype)
        q = inp.q.reshape(B, case.q_heads, D).contiguous()
        ver = getattr(flashinfer, "__version__", "?")

        def run() -> torch.Tensor:
            return w.run(q, pool)

        return Prepared(run=run, canonical=lambda out: out, state=(w, pool, workspace, bufs, q),
                        note=f"flashinfer {ver} BatchDecode (tensor cores, {backend}), page size {ps}, shared pages, "
                             "no cascade",
                        extra=sharing_extra(case, case.key_sum))


TREE_PEERS: tuple[Impl, ...] = (FastTree(), DeFT(), SglangTriton(), FlashInferDecode())
REGISTRY.update({impl.name: impl for impl in TREE_PEERS})


def versions() -> dict[str, str]:
    """Provenance of the tree peers: the artifact's commit and the sglang file's version."""
    root = artifact_root()
    sgl = root / "SGLANG_VERSION"
    return {"fasttree_artifact": artifact_commit() or "unavailable: not extracted",
            "sglang_decode_attention": sgl.read_text().strip() if sgl.exists() else "unavailable: not extracted"}
