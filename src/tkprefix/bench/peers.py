"""Implementations under test, each behind one adapter interface.

An adapter says whether it can run a case (:meth:`Impl.unavailable_reason`), estimates the extra device memory it
needs (:meth:`Impl.extra_bytes`, so a predicted out-of-memory becomes an ``oom`` row without thrashing the allocator),
and :meth:`Impl.prepare` builds its own data layout from the shared inputs (untimed: a serving system holds its KV cache
in that layout already) and returns a :class:`Prepared` whose ``run()`` is the timed decode step.

``run()`` returns the raw output; ``canonical(out)`` turns it into ``(B, Hq, D)`` in batch order outside the timed
region. An adapter raises :class:`Unsupported` for shapes it does not handle (→ ``unavailable: <reason>``); any
other exception becomes ``wrong: <error>`` and an out-of-memory error ``oom``.

Peers (BENCHMARKS.md): ``sdpa_naive``, ``sdpa_hydragen``, ``flashinfer_cascade``, ``chunk_attn_upstream``,
``hydragen_upstream``; the tree peers of :mod:`tkprefix.bench.peers_tree` (``fasttree``, ``deft``, ``sglang_triton``,
``flashinfer_decode``); ours: ``tk_hydragen``, ``tk_chunk_attn``, ``tk_tree`` (tree cases only), ``tk_auto``
(``tk_hydragen``'s call with ``backend="auto"``: a plain decode where nothing is shared); and
``torch_hydragen`` / ``torch_chunk_attn`` / ``torch_tree`` (tkprefix's exact PyTorch backend: the harness's debugging
reference, not a peer).

Tree cases (configuration 8, ``case.tree``): an adapter with ``trees = True`` takes any tree; the others take the
tree's level form where it has one, else :func:`tree_reason` gives their ``unavailable`` row.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .cases import Case
from .inputs import Inputs

__all__ = ["Impl", "Prepared", "Unsupported", "REGISTRY", "get_impl", "tree_reason", "forest_unavailable"]


class Unsupported(Exception):
    """The implementation does not handle this case (becomes ``unavailable: <reason>``)."""


@dataclass
class Prepared:
    run: Callable[[], Any]
    canonical: Callable[[Any], torch.Tensor]
    state: Any = None
    graph_ok: bool = True
    note: str = ""
    extra: dict = field(default_factory=dict)  # further columns of this implementation's ok rows (e.g. sharing)


class Impl:
    name = ""
    graph_ok = True
    trees = False  # takes any tree case (else only a tree's level form)
    forest_ok = False  # runs forest cases (configuration 7); the runner reports the others unavailable there
    forest_reason = ("this adapter takes no forest case (c7: prompts of different lengths, documents, a suffix length "
                     "per sequence)")

    def unavailable_reason(self, case: Case) -> str | None:
        return None

    def extra_bytes(self, case: Case) -> int:
        return 0

    def prepare(self, case: Case, inp: Inputs) -> Prepared:  # pragma: no cover - interface
        raise NotImplementedError


def forest_unavailable(impl: Impl, case: Case) -> str | None:
    """Why ``impl`` cannot run the forest ``case`` (None: not a forest, or the adapter expresses forests)."""
    if case.forest is None or impl.forest_ok:
        return None
    reason = impl.forest_reason
    return reason(case) if callable(reason) else reason


def _hydragen_forest_reason(case: Case) -> str:
    return case.forest.irregular_reason() + "; c7's regular forests run it as levels"


def tree_reason(impl: Impl, case: Case) -> str | None:
    """Why ``impl`` cannot take tree case ``case``, or None (not a tree, a tree-taking adapter, or a level form)."""
    if case.tree is None or impl.trees or case.levels or case.suffix:
        return None
    return f"{impl.name} takes shared prefix levels and this tree has no level form ({case.tree.level_form})"


def sharing_extra(case: Case, kv_tokens_read: int) -> dict:
    """Row columns of a tree case: KV tokens the implementation's layout reads per kv-head and the sharing that
    achieves (Σ path tokens / tokens read; the tree's ideal is the row's ``sharing_ideal``)."""
    if case.tree is None:
        return {}
    return {"kv_tokens_read": int(kv_tokens_read), "sharing": round(case.tree.path_tokens / kv_tokens_read, 4)}


def _elem(case: Case) -> int:
    return torch.empty((), dtype=getattr(torch, case.dtype)).element_size()


def _fold_q(q: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """q ``(B, 1, Hq, D)`` → ``(B, Hkv, g, D)``: the q-heads sharing a kv-head become query rows (GQA folding)."""
    B, _, Hq, D = q.shape
    return q.reshape(B, kv_heads, Hq // kv_heads, D)


# --------------------------------------------------------------------------------------------------------------------
# Peer 1: SDPA with the prefix copied into every sequence's cache (no sharing)
# --------------------------------------------------------------------------------------------------------------------
class SdpaNaive(Impl):
    """Every sequence holds its full KV (prefix copied) as ``(B, Hkv, N, D)``; one SDPA call (FlashAttention backend),
    GQA folded into query rows."""

    name = "sdpa_naive"
    trees = True

    def extra_bytes(self, case: Case) -> int:
        return case.naive_bytes

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        if case.tree is not None:
            return self._prepare_tree(case, inp)
        import torch.nn.functional as F

        B, Hkv, D, N = case.batch, case.kv_heads, case.head_dim, case.total_keys
        dt = inp.q.dtype
        K = torch.empty(B, Hkv, N, D, dtype=dt, device=inp.q.device)
        V = torch.empty_like(K)
        off = 0
        for sk, sv in zip(inp.shared_ks, inp.shared_vs):
            rows, P = sk.shape[0], sk.shape[1]
            per = B // rows
            for src, dst in ((sk, K), (sv, V)):
                dst.view(rows, per, Hkv, N, D)[:, :, :, off:off + P].copy_(
                    src.permute(0, 2, 1, 3).unsqueeze(1).expand(rows, per, Hkv, P, D))
            off += P
        if case.suffix:
            K[:, :, off:].copy_(inp.k.permute(0, 2, 1, 3))
            V[:, :, off:].copy_(inp.v.permute(0, 2, 1, 3))
        q = _fold_q(inp.q, Hkv)

        def run() -> torch.Tensor:
            return F.scaled_dot_product_attention(q, K, V)

        return Prepared(run=run, canonical=lambda o: o.reshape(B, case.q_heads, D), state=(K, V, q))

    def _prepare_tree(self, case: Case, inp: Inputs) -> Prepared:
        """Every leaf's root-to-leaf K/V copied into ``(B, Hkv, N_max, D)``, zero-padded, with a key mask where the
        paths differ in length (SDPA then takes its memory-efficient backend, FlashAttention takes no mask)."""
        import torch.nn.functional as F

        from .inputs import full_kv

        B, Hkv, D, N = case.batch, case.kv_heads, case.head_dim, case.total_keys
        K = torch.zeros(B, Hkv, N, D, dtype=inp.q.dtype, device=inp.q.device)
        V = torch.zeros_like(K)
        lens = [case.tree.path_len(b) for b in range(B)]
        for b in range(B):
            k, v = full_kv(inp, b)
            K[b, :, : lens[b]].copy_(k.transpose(0, 1))
            V[b, :, : lens[b]].copy_(v.transpose(0, 1))
        mask = None
        if min(lens) != N:
            mask = torch.arange(N, device=K.device)[None, :] < torch.tensor(lens, device=K.device)[:, None]
            mask = mask[:, None, None, :]  # (B, 1, 1, N): broadcast over kv-heads and the g query rows
        q = _fold_q(inp.q, Hkv)

        def run() -> torch.Tensor:
            return F.scaled_dot_product_attention(q, K, V, attn_mask=mask)

        return Prepared(run=run, canonical=lambda o: o.reshape(B, case.q_heads, D), state=(K, V, q, mask),
                        extra=sharing_extra(case, case.tree.path_tokens))


# --------------------------------------------------------------------------------------------------------------------
# Peer 2: the Hydragen decomposition in plain PyTorch (FlashAttention through SDPA's aten op, which returns the LSE)
# --------------------------------------------------------------------------------------------------------------------
def sdpa_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-causal attention with its natural-log LSE: q ``(N, H, M, D)``, k/v ``(N, H, L, D)`` →
    o ``(N, H, M, D)``, lse ``(N, H, M)`` float32. Uses PyTorch's FlashAttention op (``F.scaled_dot_product_attention``
    itself does not return the LSE)."""
    if q.is_cuda:
        out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False)
    else:  # the CPU twin of the same op (used by the CPU tests of the harness)
        out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False)
    return out[0], out[1]


def merge_lse(o_a: torch.Tensor, lse_a: torch.Tensor, o_b: torch.Tensor, lse_b: torch.Tensor):
    """Exact merge of two partial attentions over disjoint key sets (float32 LSE, natural log)."""
    lse = torch.logaddexp(lse_a, lse_b)
    w_a = torch.exp(lse_a - lse).unsqueeze(-1)
    w_b = torch.exp(lse_b - lse).unsqueeze(-1)
    return o_a.float() * w_a + o_b.float() * w_b, lse


class SdpaHydragen(Impl):
    """Hydragen in plain PyTorch: per shared level one FlashAttention call with the queries of all sequences sharing a
    prefix stacked as rows (``(rows, Hkv, per·g, D)`` against ``(rows, Hkv, P, D)``), one call for the suffixes
    (``(B, Hkv, g, D)`` against ``(B, Hkv, S, D)``), merged by LSE. Subclasses (lse_hydragen.py) swap the
    attention kernel through :meth:`attn_with_lse`."""

    name = "sdpa_hydragen"
    contiguous_suffix = False  # read the suffix in place as a strided (B, Hkv, S, D) view

    def attn_with_lse(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        return sdpa_with_lse(q, k, v)
    forest_reason = staticmethod(_hydragen_forest_reason)

    def extra_bytes(self, case: Case) -> int:
        return sum(r * n for r, n in case.levels) * case.kv_heads * case.head_dim * 2 * _elem(case)

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        B, Hq, Hkv, D, g = case.batch, case.q_heads, case.kv_heads, case.head_dim, case.group
        # this peer's cache layout: (rows, Hkv, P, D) for prefixes; the suffix is read in place as a strided view
        pk = [sk.permute(0, 2, 1, 3).contiguous() for sk in inp.shared_ks]
        pv = [sv.permute(0, 2, 1, 3).contiguous() for sv in inp.shared_vs]
        sk_ = inp.k.permute(0, 2, 1, 3)
        sv_ = inp.v.permute(0, 2, 1, 3)
        if self.contiguous_suffix:
            sk_, sv_ = sk_.contiguous(), sv_.contiguous()
        q = inp.q
        attn = self.attn_with_lse

        def run() -> torch.Tensor:
            o = lse = None
            for k, v in zip(pk, pv):
                rows = k.shape[0]
                per = B // rows
                # (B, 1, Hq, D) → (rows, per, Hkv, g, D) → (rows, Hkv, per·g, D)
                qs = q.reshape(rows, per, Hkv, g, D).permute(0, 2, 1, 3, 4).reshape(rows, Hkv, per * g, D)
                o_l, lse_l = attn(qs, k, v)
                o_l = o_l.reshape(rows, Hkv, per, g, D).permute(0, 2, 1, 3, 4).reshape(B, Hkv, g, D)
                lse_l = lse_l.reshape(rows, Hkv, per, g).permute(0, 2, 1, 3).reshape(B, Hkv, g)
                o, lse = (o_l, lse_l) if o is None else merge_lse(o, lse, o_l, lse_l)
            if case.suffix:
                o_s, lse_s = attn(q.reshape(B, Hkv, g, D), sk_, sv_)
                o, lse = (o_s, lse_s) if o is None else merge_lse(o, lse, o_s, lse_s)
            return o.to(q.dtype)

        return Prepared(run=run, canonical=lambda o: o.reshape(B, Hq, D), state=(pk, pv), note=self.note)

    note = ""


# --------------------------------------------------------------------------------------------------------------------
# Peer 3: FlashInfer's multi-level cascade wrapper over a paged KV cache
# --------------------------------------------------------------------------------------------------------------------
class FlashInferCascade(Impl):
    """``flashinfer.MultiLevelCascadeAttentionWrapper``: one level per shared prefix level (all sequences sharing a
    prefix row form one query segment against that prefix's pages) plus the per-sequence suffix level, over one paged
    cache ``(pages, 2, page_size, Hkv, D)`` (NHD). Planned once (untimed), CUDA-graph capturable.

    A tree case without a level form runs one cascade level per depth (the leaves under a node are one contiguous
    query segment against that node's pages; a node's last page may be partial), which needs every leaf at the same
    depth: a level must hold every query."""

    name = "flashinfer_cascade"
    page_size = 16
    forest_ok = True
    trees = True

    @staticmethod
    def _by_depth(case: Case) -> bool:
        return case.tree is not None and not (case.levels or case.suffix)

    def unavailable_reason(self, case: Case) -> str | None:
        try:
            importlib.import_module("flashinfer")
        except Exception as e:  # ImportError or a broken install
            return f"flashinfer not importable ({type(e).__name__}: {e})"
        from .peers_tree import flashinfer_dtype_reason

        r = flashinfer_dtype_reason(case)
        if r:
            return r
        if self._by_depth(case):
            t = case.tree
            if any(t.depth_of[leaf] != t.depth - 1 for leaf in t.leaves):
                return ("cascade levels cannot express this tree: its leaves sit at different depths and every level "
                        "must hold every query (flashinfer_decode runs it)")
        return None

    def _pages(self, case: Case) -> int:
        ps = self.page_size
        if case.forest is not None:  # every run of _forest_levels in its own pages (a split adds at most one page)
            f = case.forest
            return (sum(math.ceil(n / ps) + 1 for n in f.prompts) + sum(math.ceil(n / ps) for _, n in f.docs)
                    + sum(math.ceil(s / ps) for _, _, s in f.seqs))
        if self._by_depth(case):
            return sum(math.ceil(n / ps) for n in case.tree.lengths)
        return sum(r * math.ceil(n / ps) for r, n in case.levels) + case.batch * math.ceil(case.suffix / ps)

    def extra_bytes(self, case: Case) -> int:
        return self._pages(case) * 2 * self.page_size * case.kv_heads * case.head_dim * _elem(case) + (256 << 20)

    def _forest_levels(self, inp: Inputs) -> list[list[tuple[int, int, torch.Tensor, torch.Tensor]]]:
        """A forest as cascade levels, each a list of segments ``(q_start, q_stop, k, v)`` covering the batch:
        level 0 the prompts, level 1 the documents, level 2 the suffixes. A prompt without documents is split into
        two runs of pages (its first half at level 0, the rest at level 1), so that no segment of a level is empty."""
        f = inp.forest
        if any(s == 0 for _, _, s in f.seqs):
            raise Unsupported("a forest sequence with an empty suffix would make an empty cascade segment")
        lv: list[list[tuple[int, int, torch.Tensor, torch.Tensor]]] = [[], [], []]
        for a, b in f.groups(0):
            p = f.seqs[a][0]
            pk, pv = inp.prompt_ks[p], inp.prompt_vs[p]
            under_doc = {d >= 0 for _, d, _ in f.seqs[a:b]}
            if len(under_doc) > 1:
                raise Unsupported(f"prompt {p}: some of its sequences are under a document and some are not")
            if under_doc == {True}:
                lv[0].append((a, b, pk, pv))
                for da, db in f.groups(1):
                    if a <= da < b:
                        d = f.seqs[da][1]
                        lv[1].append((da, db, inp.doc_ks[d], inp.doc_vs[d]))
            else:
                n = pk.shape[0]
                h = (n // 2) // self.page_size * self.page_size or n // 2
                if h == 0:
                    raise Unsupported("a one-token prompt without documents cannot be split over two levels")
                lv[0].append((a, b, pk[:h], pv[:h]))
                lv[1].append((a, b, pk[h:], pv[h:]))
        lv[2] = [(b, b + 1, inp.k[b, :s], inp.v[b, :s]) for b, (_, _, s) in enumerate(f.seqs)]
        return lv

    def _tree_layout(self, case: Case, inp: Inputs, pool: torch.Tensor):
        ps, t, dev = self.page_size, case.tree, inp.q.device
        qo, kvp, idx, last = [], [], [], []
        base = 0
        for d in range(t.depth):
            nodes = [i for i in range(t.n_nodes) if t.depth_of[i] == d]
            q_lo, ptr, ids, lasts = [], [0], [], []
            for i in nodes:
                n = t.lengths[i]
                npg = math.ceil(n / ps)
                for j, src in ((0, inp.node_ks[i]), (1, inp.node_vs[i])):
                    src = torch.nn.functional.pad(src, (0, 0, 0, 0, 0, npg * ps - n))
                    pool[base:base + npg, j].copy_(src.view(npg, ps, *src.shape[1:]))
                q_lo.append(t.leaf_range[i][0])
                ptr.append(ptr[-1] + npg)
                ids.extend(range(base, base + npg))
                lasts.append(n - (npg - 1) * ps)
                base += npg
            for arr, vals in ((qo, q_lo + [case.batch]), (kvp, ptr), (idx, ids), (last, lasts)):
                arr.append(torch.tensor(vals, dtype=torch.int32, device=dev))
        return qo, kvp, idx, last

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        import flashinfer

        dev = inp.q.device
        ps, B, Hkv, D = self.page_size, case.batch, case.kv_heads, case.head_dim
        pool = torch.zeros(self._pages(case), 2, ps, Hkv, D, dtype=inp.q.dtype, device=dev)
        i32 = dict(dtype=torch.int32, device=dev)
        qo, kvp, idx, last = [], [], [], []
        base = 0
        if inp.forest is not None:
            for segs in self._forest_levels(inp):
                q_ptr, kv_ptr, pages, lens = [0], [0], [], []
                for a, b, k, v in segs:
                    npg = math.ceil(k.shape[0] / ps)
                    for j, src in ((0, k), (1, v)):
                        src = torch.nn.functional.pad(src, (0, 0, 0, 0, 0, npg * ps - k.shape[0]))
                        pool[base:base + npg, j].copy_(src.reshape(npg, ps, Hkv, D))
                    q_ptr.append(b)
                    kv_ptr.append(kv_ptr[-1] + npg)
                    pages.extend(range(base, base + npg))
                    lens.append(k.shape[0] - (npg - 1) * ps)
                    base += npg
                for arr, vals in ((qo, q_ptr), (kvp, kv_ptr), (idx, pages), (last, lens)):
                    arr.append(torch.tensor(vals, **i32))
            return self._plan_and_run(case, inp, pool, qo, kvp, idx, last)

        def fill(src_k: torch.Tensor, src_v: torch.Tensor, rows: int, n: int) -> int:
            npg = math.ceil(n / ps)
            pad = npg * ps - n
            for j, src in ((0, src_k), (1, src_v)):
                if pad:
                    src = torch.nn.functional.pad(src, (0, 0, 0, 0, 0, pad))
                pool[base:base + rows * npg, j].copy_(src.reshape(rows * npg, ps, Hkv, D))
            return npg

        if self._by_depth(case):
            qo, kvp, idx, last = self._tree_layout(case, inp, pool)
        for sk, sv in zip(inp.shared_ks, inp.shared_vs):
            rows, P = sk.shape[0], sk.shape[1]
            npg = fill(sk, sv, rows, P)
            qo.append(torch.arange(0, B + 1, B // rows, **i32))
            kvp.append(torch.arange(rows + 1, **i32) * npg)
            idx.append(torch.arange(base, base + rows * npg, **i32))
            last.append(torch.full((rows,), P - (npg - 1) * ps, **i32))
            base += rows * npg
        if case.suffix:
            npg = fill(inp.k, inp.v, B, case.suffix)
            qo.append(torch.arange(B + 1, **i32))
            kvp.append(torch.arange(B + 1, **i32) * npg)
            idx.append(torch.arange(base, base + B * npg, **i32))
            last.append(torch.full((B,), case.suffix - (npg - 1) * ps, **i32))
            base += B * npg
        return self._plan_and_run(case, inp, pool, qo, kvp, idx, last)

    def _plan_and_run(self, case: Case, inp: Inputs, pool: torch.Tensor, qo: list, kvp: list, idx: list,
                      last: list) -> Prepared:
        import flashinfer

        dev, ps, B, Hkv, D = inp.q.device, self.page_size, case.batch, case.kv_heads, case.head_dim
        workspace = torch.empty(128 << 20, dtype=torch.uint8, device=dev)
        # CUDA-graph mode: the plan writes into these fixed buffers, so a captured run() stays valid
        bufs = [[t.clone() for t in arr] for arr in (qo, kvp, idx, last)]
        w = flashinfer.MultiLevelCascadeAttentionWrapper(
            len(qo), workspace, "NHD", use_cuda_graph=True, qo_indptr_buf_arr=bufs[0],
            paged_kv_indptr_buf_arr=bufs[1], paged_kv_indices_buf_arr=bufs[2], paged_kv_last_page_len_buf_arr=bufs[3])
        w.plan(qo, kvp, idx, last, case.q_heads, Hkv, D, ps, causal=False,
               q_data_type=inp.q.dtype, kv_data_type=inp.q.dtype)
        if hasattr(w, "prewarm_paged_kv_stride_variant"):
            try:
                w.prewarm_paged_kv_stride_variant()
            except Exception:
                pass
        q = inp.q.reshape(B, case.q_heads, D).contiguous()

        def run() -> torch.Tensor:
            return w.run(q, pool)

        read = (sum(case.tree.lengths) if case.tree is not None else 0)  # every node's pages once
        return Prepared(run=run, canonical=lambda o: o, state=(w, pool, workspace, bufs, q),
                        extra=sharing_extra(case, read) if read else {})


# --------------------------------------------------------------------------------------------------------------------
# Peer 4: upstream ChunkAttention (microsoft/chunk-attention), if its extension is installed
# --------------------------------------------------------------------------------------------------------------------
def _tokens(case: Case, b: int) -> list[int]:
    """Token ids of sequence b: each prefix row of each level has its own ids, every suffix token is unique (a tree
    node's tokens are its own ids, so equal ids mean the same node)."""
    return _token_array(case, b).tolist()


def _token_array(case: Case, b: int) -> np.ndarray:
    """`_tokens` as an int64 array (what ChunkKVCache.add_seq takes without a per-token conversion)."""
    if case.tree is not None:
        t = case.tree
        return np.concatenate([np.arange(t.offsets[i], t.offsets[i + 1], dtype=np.int64) for i in t.path(b)])
    if case.forest is not None:  # prompts, then documents, then suffixes: each its own ids
        f = case.forest
        p, d, s = f.seqs[b]
        off = sum(f.prompts[:p])
        parts = [np.arange(off, off + f.prompts[p], dtype=np.int64)]
        base = sum(f.prompts)
        if d >= 0:
            off = base + sum(n for _, n in f.docs[:d])
            parts.append(np.arange(off, off + f.docs[d][1], dtype=np.int64))
        base += sum(n for _, n in f.docs) + sum(x for _, _, x in f.seqs[:b])
        parts.append(np.arange(base, base + s, dtype=np.int64))
        return np.concatenate(parts)
    parts, base = [], 0
    for rows, n in case.levels:
        row = b // (case.batch // rows)
        parts.append(np.arange(base + row * n, base + (row + 1) * n, dtype=np.int64))
        base += rows * n
    s0 = base + b * case.suffix
    parts.append(np.arange(s0, s0 + case.suffix, dtype=np.int64))
    return np.concatenate(parts)


def import_chunk_attn():
    """Upstream ChunkAttention's module ``chunk_attn``, built by scripts/peers/build_chunk_attn_upstream.sh into
    ``third_party/chunk-attention/src`` (or the folder ``$CHUNK_ATTN_SRC``), else an installed one."""
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    for src in (os.environ.get("CHUNK_ATTN_SRC"), root / "third_party" / "chunk-attention" / "src"):
        if src and (Path(src) / "chunk_attn" / "lib").is_dir() and str(src) not in sys.path:
            sys.path.insert(0, str(src))
            break
    return importlib.import_module("chunk_attn")


def chunk_attn_version() -> str:
    """The upstream commit the built module came from (third_party/chunk-attention/COMMIT), or ''."""
    from pathlib import Path

    f = Path(__file__).resolve().parents[3] / "third_party" / "chunk-attention" / "COMMIT"
    return f.read_text().strip() if f.is_file() else ""


class ChunkAttnUpstream(Impl):
    """microsoft/chunk-attention's ``chunk_attn.Attention`` (fp16, its own C++ prefix tree), forward(q) two-phase
    (its automatic partition). Its sequences are indexed in tree order (``add_seq`` returns the index, shifting the
    later ones), so q is put in that order and the output back in batch order outside the timed region."""

    name = "chunk_attn_upstream"
    forest_ok = True

    def unavailable_reason(self, case: Case) -> str | None:
        try:
            import_chunk_attn()
        except Exception as e:
            return (f"chunk_attn (microsoft/chunk-attention) not built ({type(e).__name__}: {e}); build it with "
                    "scripts/peers/build_chunk_attn_upstream.sh")
        if case.group != 1:
            return "upstream ChunkAttention supports no GQA (q_heads must equal kv_heads)"
        if case.batch > 128:
            return "upstream ChunkAttention supports batch <= 128"
        return None

    def extra_bytes(self, case: Case) -> int:
        return self._memory_mb(case) << 20

    @staticmethod
    def _memory_mb(case: Case) -> int:
        # its chunk pool: every chunk of the tree (prefix chunks once, each sequence's private ones) + headroom
        c, tok = case.chunk_size, case.kv_heads * case.head_dim * 2 * 2
        if case.forest is not None:
            chunks = TkChunkAttn("", "")._chunks(case)
        else:
            chunks = (sum(r * math.ceil(n / c) for r, n in case.levels)
                      + case.batch * (math.ceil(case.suffix / c) + len(case.levels) + 2))
        return int(chunks * c * tok / 2**20) + 64

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        from .inputs import full_kv

        Attention = import_chunk_attn().Attention
        attn = Attention(n_heads=case.kv_heads, d_head=case.head_dim, chunk_size=case.chunk_size,
                         memory_mb=self._memory_mb(case), dtype=torch.float16, device=inp.q.device)
        order: list[int] = []  # order[i] = batch index of upstream's sequence i
        for b in range(case.batch):
            k, v = full_kv(inp, b)
            order.insert(attn.add_seq(tokens=_tokens(case, b), k=k.half().contiguous(), v=v.half().contiguous()), b)
        perm = torch.tensor(order, device=inp.q.device)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(len(order), device=perm.device)
        q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)[perm].half().contiguous()
        attn.refresh_kernel_context(True)  # untimed: upstream re-plans only when the tree changes
        ver = chunk_attn_version()
        return Prepared(run=lambda: attn.forward(q=q), canonical=lambda o: o[inv], state=(attn, q),
                        note=f"fp16{' @' + ver[:12] if ver else ''}")


# --------------------------------------------------------------------------------------------------------------------
# Peer 5: upstream Hydragen (ScalingIntelligence/hydragen), needs flash-attn
# --------------------------------------------------------------------------------------------------------------------
class HydragenUpstream(Impl):
    name = "hydragen_upstream"
    forest_reason = staticmethod(_hydragen_forest_reason)

    def unavailable_reason(self, case: Case) -> str | None:
        try:
            importlib.import_module("flash_attn")
        except Exception:
            return "flash-attn not installed"
        try:
            importlib.import_module("hydragen.attention")
        except Exception as e:
            return f"hydragen (ScalingIntelligence/hydragen) not installed ({type(e).__name__})"
        return None

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        from hydragen.attention import hydragen_attention_nopad  # type: ignore

        seq_len = torch.full((case.batch,), case.suffix, dtype=torch.int32, device=inp.q.device)

        def run() -> torch.Tensor:
            return hydragen_attention_nopad(inp.q, inp.k, inp.v, inp.shared_ks, inp.shared_vs, seq_len)

        return Prepared(run=run, canonical=lambda o: o.reshape(case.batch, case.q_heads, case.head_dim))


# --------------------------------------------------------------------------------------------------------------------
# Ours: tkprefix (backend "tk"), and its exact PyTorch backend for debugging the harness
# --------------------------------------------------------------------------------------------------------------------
def _tkprefix():
    return importlib.import_module("tkprefix")


class TkHydragen(Impl):
    """``tkprefix.hydragen_attention_nopad(q, k, v, shared_ks, shared_vs, backend=...)`` on the inputs as given.

    ``tk_auto`` (backend "auto") makes the call a user's decode step makes, seq_len None (the one query sees its whole
    cache): where nothing is shared, auto's measured rule may run it as a plain PyTorch SDPA decode."""

    backend = "tk"
    forest_reason = staticmethod(_hydragen_forest_reason)

    def __init__(self, name: str, backend: str) -> None:
        self.name, self.backend = name, backend

    def unavailable_reason(self, case: Case) -> str | None:
        try:
            tk = _tkprefix()
            tk.hydragen_attention_nopad  # noqa: B018
        except Exception as e:
            return f"tkprefix.hydragen_attention_nopad not importable ({type(e).__name__}: {e})"
        if self.backend in ("tk", "auto"):  # auto without TK would time the torch reference
            return _tk_reason(tk)
        return None

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        tk = _tkprefix()
        # used lengths as a decode step passes them (upstream Hydragen's seq_len); also covers an empty suffix;
        # tk_auto: None, the whole cache (a decode step's plain call)
        whole_cache = self.backend == "auto" and case.suffix and case.n_queries == 1
        seq_len = None if whole_cache else torch.full((case.batch,), case.suffix, dtype=torch.int32,
                                                      device=inp.q.device)

        def run() -> torch.Tensor:
            # validate=False: this seq_len is the harness's own (valid by construction); timed as before the eager
            # value check existed, whose cost is measured apart (tests/gpu/test_contract_gpu.py, docs/design.md)
            return tk.hydragen_attention_nopad(inp.q, inp.k, inp.v, inp.shared_ks, inp.shared_vs, seq_len=seq_len,
                                               backend=self.backend, validate=False)

        try:
            run()
        except (ValueError, TypeError, NotImplementedError) as e:  # a clear argument error: an unsupported shape
            raise Unsupported(f"{type(e).__name__}: {e}") from e
        return Prepared(run=run, canonical=lambda o: o.reshape(case.batch, case.q_heads, case.head_dim),
                        graph_ok=self.backend in ("tk", "auto"),  # the torch backend is not captured
                        extra=sharing_extra(case, case.tree.unique_tokens) if case.tree is not None else {})


def _tk_reason(tk: Any) -> str | None:
    """Why the TK backend cannot run here, or None."""
    try:
        backend = importlib.import_module("tkprefix.backend")
        ok, reason = backend.tk_status()
    except Exception as e:  # noqa: BLE001
        return f"TK backend unavailable ({type(e).__name__}: {e})"
    return None if ok else f"TK backend unavailable: {reason}"


class TkChunkAttn(Impl):
    """``tkprefix.chunk_attention(q, cache, backend=...)`` over a ``ChunkKVCache`` built from the case's tokens
    (shared chunks found by the prefix tree); q is reordered to ``cache.seq_ids`` order outside the timed region."""

    forest_ok = True
    trees = True

    def __init__(self, name: str, backend: str, max_tokens: int = 40_000_000) -> None:
        self.name, self.backend, self.max_tokens = name, backend, max_tokens

    def unavailable_reason(self, case: Case) -> str | None:
        try:
            tk = _tkprefix()
            tk.chunk_attention, tk.ChunkKVCache  # noqa: B018
        except Exception as e:
            return f"tkprefix.chunk_attention not importable ({type(e).__name__}: {e})"
        if self.backend == "tk":
            r = _tk_reason(tk)
            if r:
                return r
        return None

    def _chunks(self, case: Case) -> int:
        c = case.chunk_size
        if case.forest is not None:  # prompts and documents once, each sequence its private chunks + 3 partial ones
            f = case.forest
            return (sum(math.ceil(n / c) for n in f.prompts) + sum(math.ceil(n / c) for _, n in f.docs)
                    + sum(math.ceil(f.keys(b) / c) - f.shared(b) // c + 3 for b in range(case.batch)))
        if case.tree is not None:  # exact: full chunks shared where the tokens match, one partial per leaf
            return case.tree.chunks(c)
        # prefix chunks (a partial last chunk of a level is not shared and is counted per sequence) + suffix chunks
        return (sum(r * math.ceil(n / c) for r, n in case.levels)
                + case.batch * (math.ceil(case.total_keys / c) - case.prefix // c + len(case.levels) + 1))

    def extra_bytes(self, case: Case) -> int:
        return self._chunks(case) * case.kv_heads * case.chunk_size * case.head_dim * 2 * _elem(case)

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        from .inputs import full_kv

        tk = _tkprefix()
        cache = tk.ChunkKVCache(case.kv_heads, case.head_dim, chunk_size=case.chunk_size, dtype=inp.q.dtype,
                                device=inp.q.device, capacity_chunks=self._chunks(case))
        b_of = {}
        for b in range(case.batch):
            k, v = full_kv(inp, b)
            b_of[cache.add_seq(_token_array(case, b), k, v)] = b
        order = [b_of[s] for s in cache.seq_ids]
        perm = torch.tensor(order, device=inp.q.device)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(len(order), device=perm.device)
        q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)[perm].contiguous()
        if hasattr(cache, "plan"):
            cache.plan()  # untimed: the plan is rebuilt only when the tree changes

        def run() -> torch.Tensor:
            return tk.chunk_attention(q, cache, backend=self.backend)

        try:
            run()
        except (ValueError, TypeError, NotImplementedError) as e:
            raise Unsupported(f"{type(e).__name__}: {e}") from e
        extra = sharing_extra(case, case.tree.chunk_tokens(case.chunk_size)) if case.tree is not None else {}
        return Prepared(run=run, canonical=lambda o: o[inv], state=(cache, q), graph_ok=self.backend == "tk",
                        extra=extra)


class TkChunkFirst(TkChunkAttn):
    """The chunk-first phase alone (``tkprefix.tk_chunk.chunk_first``): every shared chunk against the stacked queries
    of the sequences sharing it → fp32 partials + LSE. Only for cases without private tokens (configuration 4), where
    the partials of a sequence are all chunk-first rows; they are merged on the host side of the check (outside the
    timed region) by the LSE rule and compared with the float64 reference like every other output."""

    forest_ok = False
    forest_reason = "chunk-first alone is measured only where every token sits in a shared full chunk (suffix 0)"
    trees = False

    def __init__(self) -> None:
        super().__init__("tk_chunk_first", "tk")

    def unavailable_reason(self, case: Case) -> str | None:
        if case.suffix or case.prefix % case.chunk_size:
            return "chunk-first alone is measured only where every token sits in a shared full chunk (suffix 0)"
        try:
            importlib.import_module("tkprefix.tk_chunk").chunk_first  # noqa: B018
        except Exception as e:  # noqa: BLE001
            return f"tkprefix.tk_chunk.chunk_first not importable ({type(e).__name__}: {e})"
        return super().unavailable_reason(case)

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        tkc = importlib.import_module("tkprefix.tk_chunk")
        base = super().prepare(case, inp)  # builds the cache, checks the full step runs
        cache, q = base.state
        inv = base.canonical

        def run():
            return tkc.chunk_first(q, cache)

        def canonical(res) -> torch.Tensor:
            part_o, part_lse, work = res
            off = work.merge_offset.tolist()
            rows = work.merge_rows.long()
            outs = []
            for s in range(case.batch):
                r = rows[off[s]:off[s + 1]]
                lse = part_lse[r]  # (k, Hq)
                m = torch.logsumexp(lse, dim=0)
                outs.append((torch.exp(lse - m)[..., None] * part_o[r]).sum(0))
            return inv(torch.stack(outs))

        return Prepared(run=run, canonical=canonical, state=(cache, q),
                        note="chunk-first phase only (partials merged outside the timed region)")


class TreeAttn(Impl):
    """``tkprefix.tree_attention(q, tree, backend=...)`` (issue 13: node-granular tree attention) over a ``PagedTree``
    holding the case's tree nodes once, packed into pages of ``page_size`` tokens (nodes start and end inside pages).
    The plan (``tree.plan``) is built outside the timed region, once per tree, as a serving system would."""

    trees = True

    def __init__(self, name: str, backend: str, page_size: int = 16) -> None:
        self.name, self.backend, self.page_size = name, backend, page_size

    def unavailable_reason(self, case: Case) -> str | None:
        if case.tree is None:
            return "tree attention takes tree cases (configuration 8)"
        try:
            tk = _tkprefix()
            tk.tree_attention, tk.PagedTree  # noqa: B018
        except Exception as e:  # noqa: BLE001
            return f"tkprefix.tree_attention not importable ({type(e).__name__}: {e})"
        if self.backend == "tk":
            r = _tk_reason(tk)
            if r:
                return r
            try:
                fams = importlib.import_module("tkprefix.build")._families(None)
            except Exception as e:  # noqa: BLE001
                return f"tkprefix.build: {type(e).__name__}: {e}"
            if "tree" not in fams:
                return f"the extension is built without the tree kernel family (families {list(fams)})"
        return None

    def extra_bytes(self, case: Case) -> int:
        t = case.tree
        # K and V pools, and PagedTree.from_nodes's transient copies while it builds them (about 3x)
        pool = 3 * (t.unique_tokens + self.page_size) * case.kv_heads * case.head_dim * 2 * _elem(case)
        partials = t.n_leaves * (t.depth + 2) * case.q_heads * (case.head_dim + 1) * 4  # a few partials per leaf
        return pool + partials

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        tk = _tkprefix()
        tree = tk.PagedTree.from_nodes(list(case.tree.parents), inp.node_ks, inp.node_vs, page_size=self.page_size)
        q = inp.q.reshape(case.batch, case.q_heads, case.head_dim).contiguous()  # batch b = leaf b in preorder
        plan = tree.plan(case.q_heads)  # untimed: once per tree

        def run() -> torch.Tensor:
            return tk.tree_attention(q, tree, backend=self.backend)

        try:
            run()
        except (ValueError, TypeError, NotImplementedError) as e:  # a clear argument error: an unsupported shape
            raise Unsupported(f"{type(e).__name__}: {e}") from e
        except RuntimeError as e:
            if "without the tree family" in str(e):  # an extension (e.g. prebuilt objects) without kernels/tree
                raise Unsupported(str(e)) from e
            raise
        return Prepared(run=run, canonical=lambda o: o, state=(tree, q), graph_ok=self.backend == "tk",
                        note=f"page {self.page_size}, {plan.n_items} items, {plan.n_segs} segments",
                        extra=sharing_extra(case, plan.kv_tokens_read))


REGISTRY: dict[str, Impl] = {
    impl.name: impl
    for impl in (
        SdpaNaive(), SdpaHydragen(), FlashInferCascade(), ChunkAttnUpstream(), HydragenUpstream(),
        TkHydragen("tk_hydragen", "tk"), TkHydragen("tk_auto", "auto"), TkChunkAttn("tk_chunk_attn", "tk"),
        TkChunkFirst(),
        TkHydragen("torch_hydragen", "torch"), TkChunkAttn("torch_chunk_attn", "torch"),
        TreeAttn("tk_tree", "tk"), TreeAttn("torch_tree", "torch"),
    )
}

from . import lse_hydragen, prior_tk  # noqa: E402,F401 - add their peers to REGISTRY (they build on the classes above)


from . import peers_tree  # noqa: E402,F401  (registers fasttree, deft, sglang_triton, flashinfer_decode)


def get_impl(name: str) -> Impl:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"impl: unknown implementation {name!r} (known: {sorted(REGISTRY)})") from None
