"""Prefix trees of a tree-structured decode step (configuration 8) and our own generator of them.

A :class:`Tree` is a rooted tree of KV *nodes* numbered in depth-first preorder (node 0 is the root, every parent comes
before its children and a subtree is one contiguous range of ids). Node ``i`` holds ``lengths[i]`` tokens. Every leaf
carries one decode query that attends to the tokens of its root-to-leaf path; leaf ``b`` (the batch index) is the
``b``-th leaf in preorder, so the leaves under any node form one contiguous range of the batch.

Sharing (issue 13): a tree stores ``unique_tokens = Σ lengths`` while its queries see ``path_tokens = Σ_leaf |path|``;
``sharing_ideal = path_tokens / unique_tokens`` is the most any kernel can save by reading every shared token once.

Shapes (:func:`generate`): a spec names per depth a fan-out (children of each node at that depth, an int or an
inclusive ``[lo, hi]`` range drawn per node: uneven fan-out) and a node length (int or ``[lo, hi]``), optionally a
``prune`` probability that an inner node below the root ends early as a leaf (uneven depth, as a pruned
tree-of-thought search). Seeded, so a sweep file names the same trees on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

__all__ = ["Tree", "generate", "chain_tree"]


@dataclass(frozen=True)
class Tree:
    parents: tuple[int, ...]
    lengths: tuple[int, ...]
    name: str = ""

    def __post_init__(self) -> None:
        n = len(self.parents)
        if n == 0 or len(self.lengths) != n:
            raise ValueError(f"tree: parents and lengths need the same positive length, got {n} and "
                             f"{len(self.lengths)}")
        if self.parents[0] != -1:
            raise ValueError(f"tree.parents[0]: the root (node 0) needs parent -1, got {self.parents[0]}")
        for i, length in enumerate(self.lengths):
            if int(length) < 1:
                raise ValueError(f"tree.lengths[{i}]: a node holds at least one token, got {length}")
        stack = [0]  # the path from the root to the previous node: a preorder parent must be on it
        for i in range(1, n):
            p = self.parents[i]
            while stack and stack[-1] != p:
                stack.pop()
            if not stack:
                raise ValueError(f"tree.parents[{i}]: {p} is not an ancestor of node {i - 1} (nodes must be numbered "
                                 "in depth-first preorder)")
            stack.append(i)

    # ---- structure ------------------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.parents)

    @cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        ch: list[list[int]] = [[] for _ in self.parents]
        for i, p in enumerate(self.parents[1:], start=1):
            ch[p].append(i)
        return tuple(tuple(c) for c in ch)

    @cached_property
    def depth_of(self) -> tuple[int, ...]:
        d = [0] * self.n_nodes
        for i in range(1, self.n_nodes):
            d[i] = d[self.parents[i]] + 1
        return tuple(d)

    @property
    def depth(self) -> int:
        """Number of levels (a lone root has depth 1)."""
        return max(self.depth_of) + 1

    @cached_property
    def leaves(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.children) if not c)

    @property
    def n_leaves(self) -> int:
        return len(self.leaves)

    @cached_property
    def leaf_range(self) -> tuple[tuple[int, int], ...]:
        """Per node, the half-open range of leaf (batch) indices under it."""
        lo = [self.n_leaves] * self.n_nodes
        hi = [0] * self.n_nodes
        for b, leaf in enumerate(self.leaves):
            node = leaf
            while node != -1:
                lo[node], hi[node] = min(lo[node], b), max(hi[node], b + 1)
                node = self.parents[node]
        return tuple(zip(lo, hi))

    @cached_property
    def start(self) -> tuple[int, ...]:
        """Per node, the tokens before it on its root-to-node path."""
        s = [0] * self.n_nodes
        for i in range(1, self.n_nodes):
            p = self.parents[i]
            s[i] = s[p] + self.lengths[p]
        return tuple(s)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Per node, where its tokens start in a store holding every node once, in id order (length n_nodes + 1)."""
        o = [0]
        for length in self.lengths:
            o.append(o[-1] + length)
        return tuple(o)

    def path(self, b: int) -> list[int]:
        """Nodes from the root to leaf ``b`` (a batch index)."""
        node, out = self.leaves[b], []
        while node != -1:
            out.append(node)
            node = self.parents[node]
        return out[::-1]

    def path_len(self, b: int) -> int:
        leaf = self.leaves[b]
        return self.start[leaf] + self.lengths[leaf]

    # ---- sharing --------------------------------------------------------------------------------------------
    @property
    def unique_tokens(self) -> int:
        return sum(self.lengths)

    @cached_property
    def path_tokens(self) -> int:
        return sum(self.path_len(b) for b in range(self.n_leaves))

    @property
    def sharing_ideal(self) -> float:
        return self.path_tokens / self.unique_tokens

    def chunk_tokens(self, chunk: int) -> int:
        """Tokens a prefix-tree cache of ``chunk``-token chunks stores when only full chunks are shared
        (ChunkAttention; :class:`tkprefix.ChunkKVCache`): a full chunk is shared by the leaves whose paths hold the
        node containing its last token, each leaf's partial last chunk is its own."""
        full = sum(chunk * ((self.start[i] + n) // chunk - self.start[i] // chunk) for i, n in enumerate(self.lengths))
        return full + sum(self.path_len(b) % chunk for b in range(self.n_leaves))

    def chunks(self, chunk: int) -> int:
        """Physical chunks of that cache (full shared ones + one partial per leaf whose length is not a multiple)."""
        full = sum((self.start[i] + n) // chunk - self.start[i] // chunk for i, n in enumerate(self.lengths))
        return full + sum(1 for b in range(self.n_leaves) if self.path_len(b) % chunk)

    # ---- the level form of upstream Hydragen (tkprefix.hydragen_attention_nopad) ----------------------------
    @cached_property
    def level_form(self) -> tuple[tuple[tuple[int, int], ...], int] | str:
        """``(levels, suffix)`` when the tree is one Hydragen level per depth with the leaves as the private suffix
        (every leaf at the same depth; per depth equal node lengths and equal leaf counts per node), else the reason
        it is not."""
        depth = self.depth
        if any(self.depth_of[leaf] != depth - 1 for leaf in self.leaves):
            return "leaves at different depths (a pruned tree): no level per depth holds every sequence"
        levels = []
        for d in range(depth):
            nodes = [i for i in range(self.n_nodes) if self.depth_of[i] == d]
            lens = {self.lengths[i] for i in nodes}
            counts = {self.leaf_range[i][1] - self.leaf_range[i][0] for i in nodes}
            if len(lens) != 1:
                return f"depth {d} has nodes of unequal lengths {min(lens)}..{max(lens)} (a level is one (rows, P))"
            if len(counts) != 1:
                return (f"depth {d}'s nodes hold unequal leaf counts {min(counts)}..{max(counts)} (a level needs "
                        "n_rows | batch with an equal share per row)")
            levels.append((len(nodes), lens.pop()))
        *shared, (rows, suffix) = levels
        assert rows == self.n_leaves
        return tuple(shared), suffix

    def describe(self) -> str:
        return (f"{self.name or 'tree'}: {self.n_nodes} nodes, {self.n_leaves} leaves, depth {self.depth}, "
                f"{self.unique_tokens} unique / {self.path_tokens} path tokens (sharing {self.sharing_ideal:.1f}x)")


def _draw(value: Any, rng: random.Random, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or int(value[0]) > int(value[1]):
            raise ValueError(f"{name}: a range is [lo, hi] with lo <= hi, got {value!r}")
        return rng.randint(int(value[0]), int(value[1]))
    return int(value)


def generate(spec: Mapping[str, Any]) -> Tree:
    """A tree from a spec ``{name, fanout: [f_0, ..., f_{L-2}], lengths: [l_0, ..., l_{L-1}], prune: p, seed}``:
    the root at depth 0, each node at depth d < L-1 gets ``f_d`` children (int or [lo, hi] per node), a node at depth d
    holds ``l_d`` tokens (int or [lo, hi] per node); with ``prune`` p > 0 an inner node below the root becomes a leaf
    with probability p (at least one child of the root stays inner, so the depth is reached)."""
    known = {"name", "fanout", "lengths", "prune", "seed"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"tree spec: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    fanout, lengths = list(spec.get("fanout", [])), list(spec.get("lengths", []))
    if len(lengths) != len(fanout) + 1:
        raise ValueError(f"tree spec {spec.get('name')!r}: lengths needs one entry per depth (len(fanout) + 1 = "
                         f"{len(fanout) + 1}), got {len(lengths)}")
    prune = float(spec.get("prune", 0.0))
    if not 0.0 <= prune < 1.0:
        raise ValueError(f"tree spec prune: a probability in [0, 1), got {prune}")
    rng = random.Random(int(spec.get("seed", 0)))
    parents: list[int] = []
    lens: list[int] = []

    def grow(parent: int, d: int, keep: bool) -> None:
        i = len(parents)
        parents.append(parent)
        n = _draw(lengths[d], rng, f"lengths[{d}]")
        if n < 1:
            raise ValueError(f"lengths[{d}]: nodes hold at least one token, got {n}")
        lens.append(n)
        if d == len(fanout) or (d > 0 and not keep and rng.random() < prune):
            return
        k = _draw(fanout[d], rng, f"fanout[{d}]")
        if k < 1:
            raise ValueError(f"fanout[{d}]: an inner node has at least one child, got {k}")
        for j in range(k):
            grow(i, d + 1, keep and j == 0)

    grow(-1, 0, True)
    return Tree(tuple(parents), tuple(lens), name=str(spec.get("name", "")))


def chain_tree(lengths: list[int], name: str = "") -> Tree:
    """One sequence split into nodes (a path): for tests."""
    return Tree(tuple(range(-1, len(lengths) - 1)), tuple(lengths), name)
