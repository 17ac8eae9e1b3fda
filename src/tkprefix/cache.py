"""ChunkAttention's KV cache (Ye et al. 2024): a prefix tree of fixed-size chunks over a physical chunk pool.

A full chunk whose tokens match an existing path is shared by every sequence under it; a partial chunk never is.
Sequences are numbered depth-first, so the sequences under any chunk form one contiguous range of rows.
Sharing assumes, as upstream ChunkAttention does, that equal token prefixes have equal K and V.

Pool layout: `k_pool`, `v_pool` are (capacity_chunks, n_heads, chunk_size, d_head): head-major inside a chunk, so a
(chunk, head) tile is one contiguous chunk_size × d_head block that a kernel loads in place (one TMA tile).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from .validation import FLOAT_DTYPES, check_dim, check_tensor


@dataclass(eq=False)
class _Node:
    """One chunk of the tree; `seqs` are the sequences whose path runs through it (its reference count)."""

    chunk: int
    tokens: list[int]
    parent: "_Node | None"
    children: list["_Node"] = field(default_factory=list)
    seqs: set[int] = field(default_factory=set)


@dataclass
class ChunkPlan:
    """What the decode kernels consume (see docs/design.md); int32 tensors on the cache's device.

    Built on the host when the tree changes; `cache.plan()` returns the cached one otherwise.
    """

    shared_chunk: torch.Tensor
    shared_row_start: torch.Tensor
    shared_row_end: torch.Tensor
    shared_partial_offset: torch.Tensor
    seq_private_offset: torch.Tensor
    private_chunk: torch.Tensor
    private_len: torch.Tensor
    seq_partial_offset: torch.Tensor
    seq_partial_index: torch.Tensor
    n_seqs: int
    n_shared: int
    n_partial_rows: int
    max_private_chunks: int
    max_seq_partials: int
    host: dict  # the same arrays as Python lists, for host-side code (the torch path) without device syncs


class ChunkKVCache:
    """Prefix-tree KV cache. `n_heads` are KV heads; tokens are ints; k, v per token are (n_heads, d_head).

    >>> cache = ChunkKVCache(n_heads=2, d_head=8, chunk_size=4, dtype=torch.float32, capacity_chunks=16)
    >>> a = cache.add_seq(list(range(10)), torch.randn(10, 2, 8), torch.randn(10, 2, 8))
    >>> b = cache.add_seq(list(range(8)) + [99], torch.randn(9, 2, 8), torch.randn(9, 2, 8))
    >>> cache.stats()["shared_chunks"], cache.stats()["physical_tokens"]
    (2, 11)
    """

    def __init__(self, n_heads: int, d_head: int, chunk_size: int = 64, dtype: torch.dtype = torch.bfloat16,
                 device="cpu", capacity_chunks: int = 1024):
        for name, value in (("n_heads", n_heads), ("d_head", d_head), ("chunk_size", chunk_size),
                            ("capacity_chunks", capacity_chunks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype}")
        self.n_heads, self.d_head, self.chunk_size, self.capacity_chunks = n_heads, d_head, chunk_size, capacity_chunks
        self.dtype, self.device = dtype, torch.device(device)
        shape = (capacity_chunks, n_heads, chunk_size, d_head)
        self.k_pool = torch.zeros(shape, dtype=dtype, device=self.device)
        self.v_pool = torch.zeros(shape, dtype=dtype, device=self.device)
        self._free = list(range(capacity_chunks - 1, -1, -1))  # a stack: lowest ids are handed out first
        self._root = _Node(chunk=-1, tokens=[], parent=None)
        self._paths: dict[int, list[_Node]] = {}
        self._next_id = itertools.count()
        self._plan: ChunkPlan | None = None
        self._lens_dirty = False
        self._order: list[int] | None = None

    # ---- queries -------------------------------------------------------------------------------------------
    @property
    def seq_ids(self) -> list[int]:
        """Sequence ids in depth-first tree order: the row order of `chunk_attention`'s q and output."""
        if self._order is None:
            order: list[int] = []

            def visit(node: _Node) -> None:
                ending_here = [s for s in node.seqs if self._paths[s][-1] is node] if node is not self._root else []
                order.extend(sorted(ending_here))
                for child in node.children:
                    visit(child)

            visit(self._root)
            self._order = order
        return list(self._order)

    def seq_len(self, seq_id: int) -> int:
        return sum(len(node.tokens) for node in self._path(seq_id))

    def tokens(self, seq_id: int) -> list[int]:
        return [t for node in self._path(seq_id) for t in node.tokens]

    def chunk_refcounts(self) -> dict[int, int]:
        """Physical chunk id → number of sequences using it, for every allocated chunk."""
        return {node.chunk: len(node.seqs) for node in self._nodes()}

    @property
    def free_chunks(self) -> int:
        return len(self._free)

    def stats(self) -> dict:
        """Sharing statistics: logical tokens (Σ sequence lengths) against physical tokens stored."""
        nodes = list(self._nodes())
        logical = sum(self.seq_len(s) for s in self._paths)
        physical = sum(len(n.tokens) for n in nodes)
        return {
            "n_seqs": len(self._paths), "chunks_used": len(nodes),
            "shared_chunks": sum(len(n.seqs) >= 2 for n in nodes),
            "logical_tokens": logical, "physical_tokens": physical,
            "sharing_ratio": logical / physical if physical else 1.0,
        }

    def gather_kv(self, seq_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The sequence's logical K and V, (len, n_heads, d_head) each (a copy: for tests and peers, not decode)."""
        path = self._path(seq_id)
        ks = [self.k_pool[n.chunk, :, : len(n.tokens)].transpose(0, 1) for n in path]
        vs = [self.v_pool[n.chunk, :, : len(n.tokens)].transpose(0, 1) for n in path]
        return torch.cat(ks), torch.cat(vs)

    # ---- updates -------------------------------------------------------------------------------------------
    def add_seq(self, tokens, k: torch.Tensor, v: torch.Tensor) -> int:
        """Insert a sequence; shares every full chunk whose tokens match the tree. k, v: (len(tokens), H, D)."""
        tokens = self._check_tokens("tokens", tokens)
        if not tokens:
            raise ValueError("tokens must hold at least one token")
        self._check_kv(k, v, len(tokens))
        size = self.chunk_size
        pieces = [tokens[i : i + size] for i in range(0, len(tokens), size)]
        node, shared = self._root, 0
        for piece in pieces:  # walk the matching full chunks
            match = next((c for c in node.children if len(piece) == size and c.tokens == piece), None)
            if match is None:
                break
            node, shared = match, shared + 1
        self._reserve(len(pieces) - shared)
        seq_id = next(self._next_id)
        path = self._ancestors(node)
        for i, piece in enumerate(pieces[shared:], start=shared):
            node = self._new_node(node, piece, k[i * size : i * size + len(piece)], v[i * size : i * size + len(piece)])
            path.append(node)
        for n in path:
            n.seqs.add(seq_id)
        self._paths[seq_id] = path
        self._changed()
        return seq_id

    def append_token(self, seq_id: int, token: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Append one decoded token; k, v (H, D). Fills the private partial chunk, or opens a new chunk."""
        path = self._path(seq_id)
        token = self._check_tokens("token", [token])[0]
        self._check_kv(k[None] if isinstance(k, torch.Tensor) else k, v[None] if isinstance(v, torch.Tensor) else v, 1)
        last = path[-1]
        if len(last.tokens) < self.chunk_size:  # partial chunks are never shared, so this one is private
            assert last.seqs == {seq_id}, "a partial chunk must be private"
            self.k_pool[last.chunk, :, len(last.tokens)] = k
            self.v_pool[last.chunk, :, len(last.tokens)] = v
            last.tokens.append(token)
            self._grew(seq_id)  # the tree's shape is unchanged: only one private length moves
        else:
            self._reserve(1)
            node = self._new_node(last, [token], k[None], v[None])
            node.seqs.add(seq_id)
            path.append(node)
            self._changed()

    def append_tokens(self, seq_ids, tokens, k: torch.Tensor, v: torch.Tensor) -> None:
        """One decode step for many sequences at once: k, v (len(seq_ids), H, D); one pool write for all of them."""
        seq_ids, tokens = list(seq_ids), self._check_tokens("tokens", tokens)
        if len(set(seq_ids)) != len(seq_ids) or len(tokens) != len(seq_ids):
            raise ValueError(f"seq_ids must be distinct and match tokens one to one, got {len(seq_ids)} ids and "
                             f"{len(tokens)} tokens")
        self._check_kv(k, v, len(seq_ids))
        paths = [self._path(s) for s in seq_ids]
        opening = [len(p[-1].tokens) == self.chunk_size for p in paths]
        self._reserve(sum(opening))
        chunks, positions = [], []
        for seq_id, path, token, new_chunk in zip(seq_ids, paths, tokens, opening):
            if new_chunk:
                node = _Node(chunk=self._free.pop(), tokens=[], parent=path[-1], seqs={seq_id})
                path[-1].children.append(node)
                path.append(node)
            chunks.append(path[-1].chunk)
            positions.append(len(path[-1].tokens))
            path[-1].tokens.append(token)
        index = (torch.tensor(chunks, device=self.device), slice(None), torch.tensor(positions, device=self.device))
        self.k_pool[index] = k
        self.v_pool[index] = v
        if any(opening):
            self._changed()
        else:
            for seq_id in seq_ids:
                self._grew(seq_id)

    def fork(self, seq_id: int) -> int:
        """A new sequence with the same tokens: shares every full chunk, copies the partial last chunk."""
        path = self._path(seq_id)
        last = path[-1]
        partial = len(last.tokens) < self.chunk_size
        self._reserve(int(partial))
        new_id = next(self._next_id)
        new_path = list(path)
        if partial:
            copy = self._new_node(last.parent, list(last.tokens),
                                  self.k_pool[last.chunk, :, : len(last.tokens)].transpose(0, 1),
                                  self.v_pool[last.chunk, :, : len(last.tokens)].transpose(0, 1))
            new_path[-1] = copy
        for n in new_path:
            n.seqs.add(new_id)
        self._paths[new_id] = new_path
        self._changed()
        return new_id

    def remove_seq(self, seq_id: int) -> None:
        """Drop a sequence; chunks no other sequence uses go back to the free list."""
        path = self._path(seq_id)
        for node in reversed(path):
            node.seqs.discard(seq_id)
            if not node.seqs:
                node.parent.children.remove(node)
                self._free.append(node.chunk)
        del self._paths[seq_id]
        self._changed()

    # ---- the plan the kernels consume ----------------------------------------------------------------------
    def plan(self) -> ChunkPlan:
        """The decode plan; rebuilt when the tree changes. A token appended into a partial chunk only bumps that
        chunk's length, copied in place into `private_len`, so the plan's tensors keep their addresses (CUDA graphs)."""
        if self._plan is None:
            self._plan = self._build_plan()
            self._lens_dirty = False
        elif self._lens_dirty:
            self._plan.private_len.copy_(torch.tensor(self._plan.host["private_len"], dtype=torch.int32))
            self._lens_dirty = False
        return self._plan

    def _build_plan(self) -> ChunkPlan:
        order = self.seq_ids
        row = {s: r for r, s in enumerate(order)}
        shared_chunk, row_start, row_end, partial_offset = [], [], [], [0]
        seq_partials: list[list[int]] = [[] for _ in order]
        for node in self._nodes():
            if len(node.seqs) < 2:
                continue
            rows = sorted(row[s] for s in node.seqs)
            assert rows[-1] - rows[0] + 1 == len(rows), "sequences under a chunk must be contiguous"
            assert len(node.tokens) == self.chunk_size, "only full chunks are shared"
            shared_chunk.append(node.chunk)
            row_start.append(rows[0])
            row_end.append(rows[-1] + 1)
            for r in rows:
                seq_partials[r].append(partial_offset[-1] + r - rows[0])
            partial_offset.append(partial_offset[-1] + len(rows))
        private_offset, private_chunk, private_len = [0], [], []
        for s in order:
            for node in self._paths[s]:
                if len(node.seqs) == 1:
                    private_chunk.append(node.chunk)
                    private_len.append(len(node.tokens))
            private_offset.append(len(private_chunk))
        partial_seq_offset = [0] + list(itertools.accumulate(len(p) for p in seq_partials))
        host = {
            "row_of_seq": row, "shared_chunk": shared_chunk, "shared_row_start": row_start, "shared_row_end": row_end,
            "shared_partial_offset": partial_offset, "seq_private_offset": private_offset,
            "private_chunk": private_chunk, "private_len": private_len,
            "seq_partial_offset": partial_seq_offset, "seq_partial_index": [i for p in seq_partials for i in p],
        }
        tensors = {name: torch.tensor(values, dtype=torch.int32, device=self.device)
                   for name, values in host.items() if name != "row_of_seq"}
        return ChunkPlan(
            **tensors, n_seqs=len(order), n_shared=len(shared_chunk), n_partial_rows=partial_offset[-1],
            max_private_chunks=max((b - a for a, b in zip(private_offset, private_offset[1:])), default=0),
            max_seq_partials=max((len(p) for p in seq_partials), default=0), host=host,
        )

    # ---- internals -----------------------------------------------------------------------------------------
    def _nodes(self):
        stack = list(reversed(self._root.children))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def _ancestors(self, node: _Node) -> list[_Node]:
        path = []
        while node is not self._root:
            path.append(node)
            node = node.parent
        return path[::-1]

    def _path(self, seq_id) -> list[_Node]:
        if isinstance(seq_id, bool) or not isinstance(seq_id, int) or seq_id not in self._paths:
            raise ValueError(f"seq_id {seq_id!r} is not a live sequence of this cache (live: {sorted(self._paths)[:8]}...)")
        return self._paths[seq_id]

    def _reserve(self, n_chunks: int) -> None:
        """Fail before any change if the pool cannot take n_chunks more, so an overflow leaves the cache as it was."""
        if n_chunks > len(self._free):
            raise RuntimeError(
                f"ChunkKVCache is full: this needs {n_chunks} free chunks, {len(self._free)} of capacity_chunks="
                f"{self.capacity_chunks} are free; remove sequences or create the cache with a larger capacity_chunks"
            )

    def _new_node(self, parent: _Node, tokens: list[int], k: torch.Tensor, v: torch.Tensor) -> _Node:
        chunk = self._free.pop()
        self.k_pool[chunk, :, : len(tokens)] = k.transpose(0, 1)
        self.v_pool[chunk, :, : len(tokens)] = v.transpose(0, 1)
        node = _Node(chunk=chunk, tokens=list(tokens), parent=parent)
        parent.children.append(node)
        return node

    def _changed(self) -> None:
        self._plan, self._order = None, None

    def _grew(self, seq_id: int) -> None:
        if self._plan is not None:
            row = self._plan.host["row_of_seq"][seq_id]
            last_private = self._plan.host["seq_private_offset"][row + 1] - 1
            self._plan.host["private_len"][last_private] += 1
            self._lens_dirty = True

    def _check_tokens(self, name: str, tokens) -> list[int]:
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.tolist()
        try:
            out = [int(t) for t in tokens]
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a sequence of ints (token ids), got {type(tokens).__name__}") from None
        if any(out[i] != t for i, t in enumerate(tokens)):
            raise TypeError(f"{name} must hold integer token ids")
        return out

    def _check_kv(self, k, v, n_tokens: int) -> None:
        for name, t in (("k", k), ("v", v)):
            check_tensor(name, t, ndim=3)
            check_dim(name, t, 0, n_tokens, "tokens")
            check_dim(name, t, 1, self.n_heads, "n_heads of the cache")
            check_dim(name, t, 2, self.d_head, "d_head of the cache")
            if t.dtype != self.dtype:
                raise TypeError(f"{name} must have the cache's dtype {self.dtype}, got {t.dtype}")
