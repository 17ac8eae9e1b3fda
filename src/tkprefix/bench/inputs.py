"""Inputs of one benchmark case and the float64 reference on a subsample of sequences.

Layouts (upstream Hydragen's): q ``(B, 1, Hq, D)``; ``shared_ks[i]`` / ``shared_vs[i]`` ``(rows_i, P_i, Hkv, D)``;
k, v ``(B, S, Hkv, D)`` (the private suffix of every sequence). Every implementation returns ``(B, Hq, D)`` in batch
order (adapters undo any reordering outside the timed region).

A tree case (``case.tree``) also has ``node_ks[i]`` / ``node_vs[i]`` ``(len_i, Hkv, D)`` per tree node; leaf ``b``'s keys
are its root-to-leaf nodes' in order. Where the tree has a level form, ``shared_ks`` / ``k`` are that form and the node
tensors are views of them (one copy of the data); otherwise ``shared_ks`` is empty and ``k`` / ``v`` hold no tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .cases import Case

__all__ = ["Inputs", "make_inputs", "full_kv", "reference_rows", "rel_err", "TOLERANCE"]

# ‖out − ref‖ / ‖ref‖ above which an implementation is reported as wrong (bf16/fp16 operands land between 1e-3
# and 1e-2: METHOD.md).
TOLERANCE = {"bfloat16": 1e-2, "float16": 1e-2, "float32": 1e-4, "float64": 1e-10}


@dataclass
class Inputs:
    q: torch.Tensor
    shared_ks: list[torch.Tensor]
    shared_vs: list[torch.Tensor]
    k: torch.Tensor
    v: torch.Tensor
    seed: int
    node_ks: list[torch.Tensor] | None = None
    node_vs: list[torch.Tensor] | None = None
    tree: object = None  # tkprefix.bench.trees.Tree of a tree case


def make_inputs(case: Case, device: str | torch.device = "cuda", seed: int = 0) -> Inputs:
    """Fresh random (standard normal) inputs for ``case``; never zeros (they hide unwritten outputs)."""
    dt = getattr(torch, case.dtype)
    g = torch.Generator(device=device)
    g.manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device, dtype=torch.float32).to(dt)

    B, Hq, Hkv, D = case.batch, case.q_heads, case.kv_heads, case.head_dim
    q = rnd(B, case.n_queries, Hq, D)
    sks = [rnd(rows, length, Hkv, D) for rows, length in case.levels]
    svs = [rnd(rows, length, Hkv, D) for rows, length in case.levels]
    k = rnd(B, case.suffix, Hkv, D)
    v = rnd(B, case.suffix, Hkv, D)
    inp = Inputs(q=q, shared_ks=sks, shared_vs=svs, k=k, v=v, seed=seed)
    tree = case.tree
    if tree is None:
        return inp
    inp.tree = tree
    if case.levels or case.suffix:  # level form: node i at depth d is row r of level d (nodes of a depth in order)
        row_of: dict[int, int] = {}
        seen = [0] * tree.depth
        for i in range(tree.n_nodes):
            d = tree.depth_of[i]
            row_of[i], seen[d] = seen[d], seen[d] + 1
        lk, lv = sks + [k], svs + [v]
        inp.node_ks = [lk[tree.depth_of[i]][row_of[i]] for i in range(tree.n_nodes)]
        inp.node_vs = [lv[tree.depth_of[i]][row_of[i]] for i in range(tree.n_nodes)]
    else:
        inp.node_ks = [rnd(n, Hkv, D) for n in tree.lengths]
        inp.node_vs = [rnd(n, Hkv, D) for n in tree.lengths]
    return inp


def full_kv(inp: Inputs, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence ``b``'s whole key and value set ``(N, Hkv, D)``: its prefix rows of every level, then its suffix (for a
    tree: its root-to-leaf nodes)."""
    if inp.tree is not None:
        path = inp.tree.path(b)
        return torch.cat([inp.node_ks[i] for i in path], 0), torch.cat([inp.node_vs[i] for i in path], 0)
    B = inp.q.shape[0]
    ks, vs = [], []
    for sk, sv in zip(inp.shared_ks, inp.shared_vs):
        row = b // (B // sk.shape[0])
        ks.append(sk[row])
        vs.append(sv[row])
    ks.append(inp.k[b])
    vs.append(inp.v[b])
    return torch.cat(ks, 0), torch.cat(vs, 0)


def reference_rows(case: Case, inp: Inputs, rows: list[int]) -> torch.Tensor:
    """Exact attention in float64 for the sequences ``rows``: ``(len(rows), Hq, D)`` float64."""
    outs = []
    scale = 1.0 / math.sqrt(case.head_dim)
    for b in rows:
        k, v = full_kv(inp, b)
        k = k.double().repeat_interleave(case.group, dim=1)  # (N, Hq, D): q-head h uses kv-head h // group
        v = v.double().repeat_interleave(case.group, dim=1)
        q = inp.q[b, -1].double()  # (Hq, D): the one decode query
        s = torch.einsum("hd,nhd->hn", q, k) * scale
        p = torch.softmax(s, dim=-1)
        outs.append(torch.einsum("hn,nhd->hd", p, v))
    return torch.stack(outs)


def pick_rows(batch: int, n: int = 4, seed: int = 0) -> list[int]:
    """A few sequences to check against float64: the first, the last and random ones between."""
    if batch <= n:
        return list(range(batch))
    gen = torch.Generator().manual_seed(seed)
    mid = torch.randperm(batch - 2, generator=gen)[: n - 2] + 1
    return sorted({0, batch - 1, *mid.tolist()})


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out = out.double()
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref))
