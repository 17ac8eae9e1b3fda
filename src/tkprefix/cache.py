"""ChunkAttention's KV cache (Ye et al. 2024): a prefix tree of fixed-size chunks over a physical chunk pool.

A full chunk whose tokens match an existing path is shared by every sequence under it; a partial chunk never is.
Sequences are numbered depth-first, so the sequences under any chunk form one contiguous range of rows.
Sharing assumes, as upstream ChunkAttention does, that equal token prefixes have equal K and V.

Pool layout: `k_pool`, `v_pool` are (capacity_chunks, n_heads, chunk_size, d_head): head-major inside a chunk, so a
(chunk, head) tile is one contiguous chunk_size × d_head block that a kernel loads in place (one TMA tile). With
`n_layers > 1` every layer has its own pools (`k_pools[layer]`), all indexed by the one tree.

Host state is numpy arrays indexed by chunk id (parent, depth, birth, fill, reference count, tokens) and by sequence
id (last chunk), so no step loops over sequences or nodes in Python (docs/design.md, "ChunkKVCache: host cost").
A decode step for every sequence is `reserve(tokens)` on the host (O(1) unless a sequence crosses a chunk border)
plus `step_lengths(n)` and `write_kv(k, v, layer)` on the device (capturable in a CUDA graph).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .validation import FLOAT_DTYPES, check_dim, check_tensor


def normalize_device(device) -> torch.device:
    """torch.device with an explicit index for CUDA ("cuda" -> "cuda:<current device>"), so it compares equal to the
    device of the tensors allocated on it."""
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"device must name a torch device, got {device!r} ({exc})") from None
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


@dataclass
class ChunkPlan:
    """What the decode kernels consume (see docs/design.md); int32 tensors on the cache's device.

    A new ChunkPlan object is made when the tree changes; `cache.plan()` returns the same object otherwise. The
    tensors are views of buffers the cache keeps, so their addresses survive a new plan of no larger size (and
    `private_len` is advanced in place by every append: a captured CUDA graph reads the live lengths).
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
    host: dict  # the structure as int64 numpy arrays (every field above but private_len, which only the device keeps)


_POOL_BOUNDED = ("shared_chunk", "shared_row_start", "shared_row_end", "shared_partial_offset", "private_chunk",
                 "private_len")
_HOST_FIELDS = ("shared_chunk", "shared_row_start", "shared_row_end", "shared_partial_offset", "seq_private_offset",
                "private_chunk", "seq_partial_offset", "seq_partial_index")


def _at(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] where index >= 0, -1 elsewhere."""
    out = np.full(index.shape, -1, np.int64)
    out[index >= 0] = values[index[index >= 0]]
    return out


class ChunkKVCache:
    """Prefix-tree KV cache. `n_heads` are KV heads; tokens are ints; k, v per token are (n_heads, d_head)
    (with a leading (n_layers,) dimension when n_layers > 1).

    >>> cache = ChunkKVCache(n_heads=2, d_head=8, chunk_size=4, dtype=torch.float32, capacity_chunks=16)
    >>> a = cache.add_seq(list(range(10)), torch.randn(10, 2, 8), torch.randn(10, 2, 8))
    >>> b = cache.add_seq(list(range(8)) + [99], torch.randn(9, 2, 8), torch.randn(9, 2, 8))
    >>> cache.stats()["shared_chunks"], cache.stats()["physical_tokens"]
    (2, 11)
    """

    def __init__(self, n_heads: int, d_head: int, chunk_size: int = 64, dtype: torch.dtype = torch.bfloat16,
                 device="cpu", capacity_chunks: int = 1024, n_layers: int = 1):
        for name, value in (("n_heads", n_heads), ("d_head", d_head), ("chunk_size", chunk_size),
                            ("capacity_chunks", capacity_chunks), ("n_layers", n_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype}")
        self.n_heads, self.d_head, self.chunk_size, self.capacity_chunks = n_heads, d_head, chunk_size, capacity_chunks
        self.n_layers, self.dtype, self.device = n_layers, dtype, normalize_device(device)
        shape = (capacity_chunks, n_heads, chunk_size, d_head)
        # one allocation (layer, k|v, chunk, ...): a tree edit writes every layer's K and V in one copy
        self._kv = torch.zeros((n_layers, 2, *shape), dtype=dtype, device=self.device)
        self.k_pools = tuple(self._kv[layer, 0] for layer in range(n_layers))  # each contiguous
        self.v_pools = tuple(self._kv[layer, 1] for layer in range(n_layers))
        self.k_pool, self.v_pool = self.k_pools[0], self.v_pools[0]
        cap = capacity_chunks
        # per chunk id (valid where _ref > 0)
        self._parent = np.full(cap, -1, np.int64)  # -1: a child of the (chunkless) root
        self._depth = np.zeros(cap, np.int64)  # index of the chunk in its sequences' paths
        self._key = np.zeros(cap, np.int64)  # sort key among siblings (creation counter, see _build_plan)
        self._fill = np.zeros(cap, np.int64)  # valid tokens
        self._ref = np.zeros(cap, np.int64)  # sequences whose path runs through the chunk
        self._tok = np.zeros((cap, chunk_size), np.int64)
        self._indexed = np.zeros(cap, bool)  # in _index (full chunks that add_seq can match)
        self._hash = np.zeros(cap, np.uint64)  # token hash of indexed chunks
        self._hash_mult = np.random.default_rng(0x7C4E).integers(1, 2**63, chunk_size, dtype=np.uint64) | np.uint64(1)
        self._free = np.arange(cap - 1, -1, -1, dtype=np.int64)  # a stack (top at _n_free - 1): lowest ids first
        self._n_free = cap
        self._keys = 0
        # (parent, token hash) as one int -> full chunks: a chunk id, or a list of several (sibling candidates). Ints
        # only, so indexing thousands of chunks allocates nothing the garbage collector tracks.
        self._index: dict[int, int | list[int]] = {}
        self._unindexed: list[np.ndarray] = []  # chunks filled by appends, indexed when add_seq next needs the index
        self._duplicates = 0  # index entries with several chunks (equal full siblings)
        self._last_match: np.ndarray | None = None  # the path add_seq matched last
        # per sequence id
        self._seq_last = np.full(64, -1, np.int64)  # last chunk of its path, -1: not live
        self._seq_row = np.full(64, -1, np.int64)
        self._seq_key = np.zeros(64, np.int64)
        self._next_id = 0
        self._n_live = 0
        # row order, plan and decode state (valid while _plan is not None)
        self._plan: ChunkPlan | None = None
        self._rows = np.zeros(0, np.int64)  # seq ids in row (depth-first) order
        self._rows_list: list[int] | None = None
        self._row_last = np.zeros(0, np.int64)
        self._row_lastpriv = np.zeros(0, np.int64)  # index in private_chunk of each row's last private chunk
        self._bufs: dict[str, torch.Tensor] = {}  # device buffers behind the plan's tensors (stable addresses)
        self._dev: dict[str, torch.Tensor] = {}  # their current views
        self._pending: list[np.ndarray] = []  # tokens of lock-step appends not yet written to _tok / _fill
        self._min_room: int | None = None  # free slots of the fullest row's last chunk, minus pending appends
        self._appended = 0  # lock-step appends since the plan's lengths were uploaded (the device adds them)
        self._appended_dev = torch.zeros((), dtype=torch.int32, device=self.device)

    # ---- queries -------------------------------------------------------------------------------------------
    @property
    def seq_ids(self) -> list[int]:
        """Sequence ids in depth-first tree order: the row order of `chunk_attention`'s q and output."""
        self._ensure_plan()
        if self._rows_list is None:
            self._rows_list = self._rows.tolist()
        return list(self._rows_list)

    @property
    def n_seqs(self) -> int:
        return self._n_live

    def seq_len(self, seq_id: int) -> int:
        last = self._last(seq_id)
        self._sync()
        return int(self._depth[last] * self.chunk_size + self._fill[last])

    def seq_chunks(self, seq_id: int) -> list[int]:
        """Physical chunk ids of the sequence's path, root first."""
        return self._path(self._last(seq_id))[::-1]

    def tokens(self, seq_id: int) -> list[int]:
        path = self.seq_chunks(seq_id)
        self._sync()
        return [t for c in path for t in self._tok[c, : self._fill[c]].tolist()]

    def chunk_refcounts(self) -> dict[int, int]:
        """Physical chunk id → number of sequences using it, for every allocated chunk."""
        live = np.flatnonzero(self._ref > 0)
        return dict(zip(live.tolist(), self._ref[live].tolist()))

    def free_chunk_ids(self) -> list[int]:
        """The free list, next to be handed out last."""
        return self._free[: self._n_free].tolist()

    @property
    def free_chunks(self) -> int:
        return self._n_free

    def stats(self) -> dict:
        """Sharing statistics: logical tokens (Σ sequence lengths) against physical tokens stored."""
        self._sync()
        live = np.flatnonzero(self._ref > 0)
        last = self._seq_last[self._seq_last >= 0]
        logical = int((self._depth[last] * self.chunk_size + self._fill[last]).sum())
        physical = int(self._fill[live].sum())
        return {
            "n_seqs": self._n_live, "chunks_used": len(live), "shared_chunks": int((self._ref[live] >= 2).sum()),
            "logical_tokens": logical, "physical_tokens": physical,
            "sharing_ratio": logical / physical if physical else 1.0,
        }

    def gather_kv(self, seq_id: int, layer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The sequence's logical K and V, (len, n_heads, d_head) each (a copy: for tests and peers, not decode)."""
        path = self.seq_chunks(seq_id)
        self._check_layer(layer)
        self._sync()
        kp, vp = self.k_pools[layer], self.v_pools[layer]
        ks = [kp[c, :, : self._fill[c]].transpose(0, 1) for c in path]
        vs = [vp[c, :, : self._fill[c]].transpose(0, 1) for c in path]
        return torch.cat(ks), torch.cat(vs)

    # ---- tree edits ----------------------------------------------------------------------------------------
    def add_seq(self, tokens, k: torch.Tensor, v: torch.Tensor) -> int:
        """Insert a sequence; shares every full chunk whose tokens match the tree. k, v: (len(tokens), H, D)."""
        toks = self._check_tokens("tokens", tokens)
        if len(toks) == 0:
            raise ValueError("tokens must hold at least one token")
        self._check_kv(k, v, len(toks))
        self._sync()
        self._flush_index()
        size, n = self.chunk_size, len(toks)
        pieces = toks[: n // size * size].reshape(-1, size)
        path = self._match(pieces, self._hash_rows(pieces))
        node = path[-1] if path else -1
        shared, n_pieces = len(path), -(-n // size)
        n_new = n_pieces - shared
        self._reserve(n_new)
        seq_id = self._new_seq_id()
        if n_new:
            new = self._alloc(n_new)
            self._parent[new] = np.concatenate(([node], new[:-1]))
            self._depth[new] = np.arange(shared, n_pieces)
            self._fill[new] = size
            self._fill[new[-1]] = n - (n_pieces - 1) * size
            rest = np.zeros(n_new * size, np.int64)
            rest[: n - shared * size] = toks[shared * size :]
            self._tok[new] = rest.reshape(n_new, size)
            self._ref[new] = 1
            self._index_chunks(new[self._fill[new] == size])
            self._write_chunks(new, k, v, shared * size)
            node = int(new[-1])
        if path:
            self._ref[np.asarray(path)] += 1
        self._seq_last[seq_id] = node
        self._changed()
        return seq_id

    def add_seqs(self, tokens, k, v) -> list[int]:
        """Insert many sequences at once; the same as `[add_seq(t, k_i, v_i) for ...]` (same ids, chunks, sharing and
        plan) with one allocation, one write of the chunk tables and one K/V copy per pool. tokens: one token
        sequence per new sequence; k, v: one (len(tokens[i]), H, D) tensor each (a leading (n_layers,) when
        n_layers > 1). The new sequences share full chunks with the tree and with each other. Bad input or a full
        pool raises before anything changes.

        >>> cache = ChunkKVCache(n_heads=2, d_head=8, chunk_size=4, dtype=torch.float32, capacity_chunks=16)
        >>> kv = torch.randn(9, 2, 8)
        >>> cache.add_seqs([list(range(8)) + [s] for s in range(3)], [kv] * 3, [kv] * 3)
        [0, 1, 2]
        >>> cache.stats()["shared_chunks"], cache.free_chunks
        (2, 11)
        """
        toks, ks, vs = self._check_batch(tokens, k, v)
        n, size = len(toks), self.chunk_size
        if not n:
            return []
        self._sync()
        self._flush_index()
        lens = np.array([len(t) for t in toks], np.int64)
        nf = lens // size  # full pieces of each sequence
        hashes = np.zeros((n, max(1, int(nf.max()))), np.uint64)
        for i, t in enumerate(toks):
            hashes[i, : nf[i]] = self._hash_rows(t[: nf[i] * size].reshape(-1, size))
        # The batch's own prefix tree of full pieces: node[i, j] is sequence i's node at depth j, `owner` the first
        # sequence through each node. Grouped by hash, then confirmed on the tokens; on a hash collision, grouped
        # by the tokens themselves.
        node, owner, parent, level = self._batch_tree(hashes, nf)
        if not self._batch_tree_holds(toks, node, owner, nf):
            exact: dict[bytes, int] = {}
            ids = np.zeros(hashes.shape, np.int64)
            for i, t in enumerate(toks):
                pieces = t[: nf[i] * size].reshape(-1, size)
                ids[i, : nf[i]] = [exact.setdefault(p.tobytes(), len(exact)) for p in pieces]
            node, owner, parent, level = self._batch_tree(ids, nf)
        chunk_of = self._match_nodes(toks, hashes, owner, parent, level)  # -1: a new chunk
        # New chunks, in the order one add_seq per sequence allocates them: by sequence, root first; each
        # sequence's unmatched nodes it is the first through, then its partial last piece.
        fresh = np.flatnonzero(chunk_of < 0)
        tail = np.flatnonzero(lens % size)
        last_node = np.where(nf > 0, node[np.arange(n), np.maximum(nf - 1, 0)], -1)
        item_owner = np.concatenate((owner[fresh], tail))
        item_level = np.concatenate((level[fresh], nf[tail]))
        order = np.lexsort((item_level, item_owner))
        item_owner, item_level = item_owner[order], item_level[order]
        item_node = np.concatenate((fresh, np.full(len(tail), -1)))[order]
        item_parent = np.concatenate((parent[fresh], last_node[tail]))[order]
        n_new = len(order)
        self._reserve(n_new)  # nothing has changed before this point
        # keys and ids as n add_seq calls hand them out: each sequence, then its chunks
        per_seq = np.bincount(item_owner, minlength=n)
        seq_first = np.cumsum(per_seq + 1) - (per_seq + 1)
        item_first = np.cumsum(per_seq) - per_seq
        new = self._alloc(n_new)
        self._key[new] = self._keys - n_new + seq_first[item_owner] + 1 + np.arange(n_new) - item_first[item_owner]
        seq_ids = np.arange(self._next_id, self._next_id + n)
        self._grow_seqs(self._next_id + n)
        self._seq_key[seq_ids] = self._keys - n_new + seq_first
        self._keys += n
        self._next_id += n
        self._n_live += n
        full = item_node >= 0
        uses = np.bincount(node[node >= 0], minlength=len(owner))  # sequences through each node
        matched = np.flatnonzero(chunk_of >= 0)
        np.add.at(self._ref, chunk_of[matched], uses[matched])
        chunk_of[item_node[full]] = new[full]
        self._parent[new] = _at(chunk_of, item_parent)
        self._depth[new] = item_level
        fill = np.where(full, size, lens[item_owner] - item_level * size)
        self._fill[new] = fill
        self._ref[new] = np.where(full, _at(uses, item_node), 1)
        writers = np.flatnonzero(per_seq)
        tparts, kparts, vparts, pad = [], [], [], np.zeros(size, np.int64)
        for i, a in zip(writers.tolist(), (item_level[item_first[writers]] * size).tolist()):
            t = toks[i]
            tparts += [t[a:], pad[: -(len(t) - a) % size]]  # padded to whole chunks, as add_seq leaves them
            kparts.append(ks[i].narrow(-3, a, len(t) - a))
            vparts.append(vs[i].narrow(-3, a, len(t) - a))
        if n_new:
            self._tok[new] = np.concatenate(tparts).reshape(n_new, size)
        self._index_chunks(new[full], hashes[item_owner[full], item_level[full]])
        self._write_chunks_of(new, kparts, vparts)
        self._seq_last[seq_ids] = _at(chunk_of, last_node)
        self._seq_last[seq_ids[tail]] = new[~full]  # tails, allocated in sequence order
        self._last_match = chunk_of[node[-1, : nf[-1]]]
        self._changed()
        return seq_ids.tolist()

    def fork(self, seq_id: int) -> int:
        """A new sequence with the same tokens: shares every full chunk, copies the partial last chunk."""
        last = self._last(seq_id)
        self._sync()
        path = np.asarray(self._path(last))
        partial = self._fill[last] < self.chunk_size
        self._reserve(int(partial))
        new_id = self._new_seq_id()
        if partial:
            c = int(self._alloc(1)[0])
            self._parent[c], self._depth[c], self._fill[c] = self._parent[last], self._depth[last], self._fill[last]
            self._tok[c] = self._tok[last]
            self._ref[c] = 1
            self._kv[:, :, c] = self._kv[:, :, last]
            path, last = path[1:], c
        self._ref[path] += 1
        self._seq_last[new_id] = last
        self._changed()
        return new_id

    def remove_seq(self, seq_id: int) -> None:
        """Drop a sequence; chunks no other sequence uses go back to the free list."""
        last = self._last(seq_id)
        self._sync()
        path = np.asarray(self._path(last))  # leaf first
        self._ref[path] -= 1
        freed = path[self._ref[path] == 0]
        for c in freed[self._indexed[freed]].tolist():
            self._drop_from_index(c)
        self._free[self._n_free : self._n_free + len(freed)] = freed
        self._n_free += len(freed)
        self._fill[freed] = 0
        self._seq_last[seq_id] = -1
        self._n_live -= 1
        self._changed()

    # ---- appends -------------------------------------------------------------------------------------------
    def append_token(self, seq_id: int, token: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Append one decoded token; k, v (H, D). Fills the private partial chunk, or opens a new chunk."""
        self._last(seq_id)
        for name, t in (("k", k), ("v", v)):
            check_tensor(name, t, ndim=2 if self.n_layers == 1 else 3)
        self.append_tokens([seq_id], [token], k.unsqueeze(-3), v.unsqueeze(-3))

    def append_tokens(self, seq_ids, tokens, k: torch.Tensor, v: torch.Tensor) -> None:
        """One decode step for many sequences at once: k, v (len(seq_ids), H, D) (a leading (n_layers,) when
        n_layers > 1). seq_ids=None: every sequence, in `seq_ids` (row) order -- the lock-step decode step, whose host
        cost does not grow with the number of sequences (see `reserve`)."""
        if seq_ids is None:
            toks = self._check_tokens("tokens", tokens)
            self._check_kv(k, v, len(toks))
            k, v = k.to(self.device), v.to(self.device)
            self.reserve(toks)
            self._appended_dev.fill_(self._appended)
            self.step_lengths(self._appended_dev)
            for layer in range(self.n_layers):
                self.write_kv(k if self.n_layers == 1 else k[layer], v if self.n_layers == 1 else v[layer], layer)
            return
        ids = self._check_seq_ids(seq_ids)
        toks = self._check_tokens("tokens", tokens)
        if len(toks) != len(ids):
            raise ValueError(f"seq_ids must match tokens one to one, got {len(ids)} ids and {len(toks)} tokens")
        self._check_kv(k, v, len(ids))
        self._sync()
        last = self._seq_last[ids]
        opening = self._fill[last] == self.chunk_size
        self._reserve(int(opening.sum()))
        if opening.any():
            self._open(ids[opening])
            last = self._seq_last[ids]
        slot = self._fill[last].copy()
        self._tok[last, slot] = toks
        self._fill[last] += 1
        self._note_full(last)
        heads = np.arange(self.n_heads)
        flat = ((last[:, None] * self.n_heads + heads) * self.chunk_size + slot[:, None]).reshape(-1)
        flat = torch.from_numpy(flat).to(self.device)
        x = self._layered(k, v)
        self._kv.view(self.n_layers, 2, -1, self.d_head).index_copy_(2, flat, x.flatten(2, 3))
        self._min_room = None
        if self._plan is not None:  # the plan keeps its shape: upload the moved lengths, re-base lock-step counting
            rows = self._seq_row[ids]
            self._plan.private_len[torch.from_numpy(self._row_lastpriv[rows]).to(self.device)] = \
                torch.from_numpy(self._fill[last].astype(np.int32)).to(self.device)
            self._upload_row_state()

    def reserve(self, tokens) -> bool:
        """Host half of a lock-step decode step: one token for every sequence, `tokens` in `seq_ids` order.

        Opens a chunk for each sequence whose last chunk is full (one vectorized allocation; the plan is updated
        incrementally) and records the tokens; O(1) when no sequence crosses a chunk border. Returns True when the
        tree (so the plan object) changed: a captured CUDA graph must then be captured again. The device half is
        `step_lengths` then `write_kv` for every layer."""
        toks = self._check_tokens("tokens", tokens)
        if len(toks) != self._n_live:
            raise ValueError(f"tokens must hold one token per sequence ({self._n_live}), got {len(toks)}")
        before = self._plan
        self._ensure_plan()
        if self._min_room is None:
            self._sync()
            self._min_room = self.chunk_size - int(self._fill[self._row_last].max(initial=0))
        if self._min_room == 0:
            self._sync()
            opening = np.flatnonzero(self._fill[self._row_last] == self.chunk_size)
            self._reserve(len(opening))
            self._open(self._rows[opening])
            self._ensure_plan()
            self._min_room = self.chunk_size - int(self._fill[self._row_last].max(initial=0))
        self._pending.append(toks.copy())
        self._appended += 1
        self._min_room -= 1
        return self._plan is not before

    @property
    def appended(self) -> int:
        """Lock-step appends (`reserve` calls) since the plan's lengths were last uploaded: the `n` that
        `step_lengths` must be given for the current step."""
        return self._appended

    def step_lengths(self, n: torch.Tensor) -> None:
        """Device half of a lock-step step, first part: every row's last chunk length becomes its length at the last
        upload plus `n` (an int tensor on the cache's device: `appended` for the current step). Idempotent and
        capturable in a CUDA graph; the plan's tensors are written in place."""
        plan = self._plan
        if plan is None:
            raise RuntimeError("step_lengths follows reserve: the tree changed since, call reserve(tokens) first")
        if (not isinstance(n, torch.Tensor) or n.numel() != 1 or n.dtype not in (torch.int32, torch.int64)
                or n.device != self.device):
            raise TypeError(f"n must be a one-element int32/int64 tensor on the cache's device {self.device}, got "
                            f"{type(n).__name__}" + (f" {n.dtype} {tuple(n.shape)} on {n.device}"
                                                      if isinstance(n, torch.Tensor) else ""))
        lens = self._dev["row_base"] + n.reshape(()).to(torch.int32)
        plan.private_len.index_copy_(0, self._dev["row_lastpriv"], lens)
        torch.add(self._dev["row_slot0"], lens[:, None], out=self._dev["write_index"].view(-1, self.n_heads))

    def write_kv(self, k: torch.Tensor, v: torch.Tensor, layer: int = 0) -> None:
        """Device half, second part: k, v (n_seqs, H, D) of the step's token of every row (row order) into layer
        `layer`'s pools at the slots `step_lengths` computed. Capturable."""
        self._check_layer(layer)
        for name, t in (("k", k), ("v", v)):
            check_tensor(name, t, ndim=3)
            if t.shape != (self._plan.n_seqs if self._plan is not None else -1, self.n_heads, self.d_head):
                raise ValueError(f"{name} must be (n_seqs, n_heads, d_head) = ({self._n_live}, {self.n_heads}, "
                                 f"{self.d_head}) after reserve, got {tuple(t.shape)}")
            if t.dtype != self.dtype or t.device != self.device:
                raise TypeError(f"{name} must be {self.dtype} on {self.device}, got {t.dtype} on {t.device}")
        index = self._dev["write_index"]
        self.k_pools[layer].view(-1, self.d_head).index_copy_(0, index, k.reshape(-1, self.d_head))
        self.v_pools[layer].view(-1, self.d_head).index_copy_(0, index, v.reshape(-1, self.d_head))

    # ---- the plan the kernels consume ----------------------------------------------------------------------
    def plan(self) -> ChunkPlan:
        """The decode plan: a new object when the tree changes, the same one otherwise (O(1))."""
        self._ensure_plan()
        return self._plan

    def _build_plan(self) -> dict:
        """The plan's structure from scratch, vectorized: row order, shared chunks' row ranges, private chunks."""
        cap, size = self.capacity_chunks, self.chunk_size
        live = np.flatnonzero(self._ref > 0)
        seqs = np.flatnonzero(self._seq_last >= 0)
        last = self._seq_last[seqs]
        # Depth-first order. The items under a node are its children and the sequences ending there, ordered by key
        # (a sequence that opens a chunk hands its key to it, so appends never move a row). Level by level, top-down:
        # each item's first row is its parent's plus the sizes of the items before it.
        n_live = len(live)
        item_parent = np.concatenate((self._parent[live], last))
        item_key = np.concatenate((self._key[live], self._seq_key[seqs]))
        item_depth = np.concatenate((self._depth[live], self._depth[last] + 1))
        item_size = np.concatenate((self._ref[live], np.ones(len(seqs), np.int64)))
        item_start = np.zeros(len(item_key), np.int64)
        start = np.zeros(cap, np.int64)  # first row of each chunk's subtree; it spans _ref rows
        order = np.lexsort((item_key, item_parent, item_depth))
        levels = np.split(order, np.flatnonzero(np.diff(item_depth[order])) + 1) if len(order) else []
        for level in levels:
            parent, sizes = item_parent[level], item_size[level]
            before = np.cumsum(sizes) - sizes
            first = np.ones(len(level), bool)
            first[1:] = parent[1:] != parent[:-1]
            group = np.maximum.accumulate(np.where(first, np.arange(len(level)), 0))
            item_start[level] = np.where(parent < 0, 0, start[parent]) + before - before[group]
            chunks = level[level < n_live]
            start[live[chunks]] = item_start[chunks]
        rows = np.empty(len(seqs), np.int64)
        rows[item_start[n_live:]] = seqs
        n = len(rows)
        shared = live[self._ref[live] >= 2]
        shared = shared[np.lexsort((self._depth[shared], start[shared]))]  # preorder
        assert (self._fill[shared] == size).all(), "only full chunks are shared"
        s0, count = start[shared], self._ref[shared]
        poff = np.concatenate(([0], np.cumsum(count)))
        n_part = int(poff[-1])
        part_row = np.repeat(s0 - poff[:-1], count) + np.arange(n_part)  # row of each partial (chunk, row)
        key = part_row.astype(np.uint16) if n < 2**16 else part_row  # radix sort for small batches
        seq_partial_index = np.argsort(key, kind="stable")
        spoff = np.concatenate(([0], np.cumsum(np.bincount(part_row, minlength=n))))
        private = live[self._ref[live] == 1]
        private = private[np.lexsort((self._depth[private], start[private]))]
        prow = start[private]
        return {
            "rows": rows, "shared_chunk": shared, "shared_row_start": s0, "shared_row_end": s0 + count,
            "shared_partial_offset": poff,
            "seq_private_offset": np.concatenate(([0], np.cumsum(np.bincount(prow, minlength=n)))),
            "private_chunk": private, "seq_partial_offset": spoff, "seq_partial_index": seq_partial_index,
        }

    def _ensure_plan(self) -> None:
        if self._plan is not None:
            return
        self._sync()
        host = self._build_plan()
        self._rows, self._rows_list = host.pop("rows"), None
        self._seq_row[self._rows] = np.arange(len(self._rows))
        self._set_plan(host, upload=_HOST_FIELDS)

    def _set_plan(self, host: dict, upload) -> None:
        """A new ChunkPlan over `host`; uploads the fields named in `upload` and the lengths, and the row state."""
        old = self._plan
        tensors = {name: self._upload(name, host[name]) if name in upload else getattr(old, name)
                   for name in _HOST_FIELDS}
        tensors["private_len"] = self._upload("private_len", self._fill[host["private_chunk"]])
        poff, spoff = host["seq_private_offset"], host["seq_partial_offset"]
        self._plan = ChunkPlan(
            **tensors, n_seqs=len(self._rows), n_shared=len(host["shared_chunk"]),
            n_partial_rows=int(host["shared_partial_offset"][-1]),
            max_private_chunks=int(np.diff(poff).max(initial=0)), max_seq_partials=int(np.diff(spoff).max(initial=0)),
            host=host,
        )
        self._row_last = self._seq_last[self._rows]
        self._row_lastpriv = poff[1:] - 1
        self._upload_row_state()

    def _upload_row_state(self) -> None:
        """Each row's last chunk, its private index and its current length, for the device half of a step."""
        n = len(self._rows)
        self._upload("row_lastpriv", self._row_lastpriv, torch.int64)
        self._upload("row_base", self._fill[self._row_last])
        # flat row of (chunk, head, slot) in a pool viewed as (-1, d_head): row_slot0 + the new token's length
        slot0 = ((self._row_last[:, None] * self.n_heads + np.arange(self.n_heads)) * self.chunk_size - 1).reshape(-1)
        self._dev["row_slot0"] = self._upload("row_slot0", slot0, torch.int64).view(n, self.n_heads)
        self._upload("write_index", np.zeros(n * self.n_heads, np.int64), torch.int64)
        assert not self._pending, "pending appends must be synced before the row state moves"
        self._appended, self._min_room = 0, None

    def _upload(self, name: str, values: np.ndarray, dtype=torch.int32) -> torch.Tensor:
        """values into the device buffer `name` (re-allocated only when too small, so addresses stay put); returns
        the view, also kept as `self._dev[name]`."""
        n = len(values)
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < n:
            # arrays bounded by the pool get a buffer of that bound at once; the others grow by doubling
            bound = self.capacity_chunks + 1 if name in _POOL_BOUNDED else 16
            size = max(n, bound, 2 * (buf.numel() if buf is not None else 0))
            buf = torch.empty(size, dtype=dtype, device=self.device)
            self._bufs[name] = buf
        view = buf[:n]
        view.copy_(torch.from_numpy(np.ascontiguousarray(values, dtype=np.int32 if dtype == torch.int32 else np.int64)))
        self._dev[name] = view
        return view

    # ---- internals -----------------------------------------------------------------------------------------
    def _open(self, seqs: np.ndarray) -> None:
        """A new private chunk after the (full) last chunk of each of `seqs`, allocated in that order."""
        parents = self._seq_last[seqs]
        new = self._alloc(len(seqs))
        self._parent[new] = parents
        self._depth[new] = self._depth[parents] + 1
        self._fill[new] = 0
        self._ref[new] = 1
        self._key[new] = self._seq_key[seqs]  # the chunk takes the sequence's place among its parent's items
        self._seq_last[seqs] = new
        if self._plan is None:
            return
        # Row order and shared chunks are unchanged: insert each new chunk after its row's private chunks.
        host = dict(self._plan.host)
        rows = self._seq_row[seqs]
        by_row = np.argsort(rows)
        rows, new = rows[by_row], new[by_row]
        poff = host["seq_private_offset"]
        host["private_chunk"] = np.insert(host["private_chunk"], poff[rows + 1], new)
        step = np.zeros(len(poff), np.int64)
        step[rows + 1] = 1
        host["seq_private_offset"] = poff + np.cumsum(step)
        self._set_plan(host, upload=("private_chunk", "seq_private_offset"))

    def _sync(self) -> None:
        """Write the tokens of pending lock-step appends into the host arrays (rows unchanged since they began)."""
        if not self._pending:
            return
        steps = np.stack(self._pending)
        self._pending = []
        last = self._row_last
        first = last * self.chunk_size + self._fill[last]  # flat slot of each row's first pending token
        self._tok.reshape(-1)[first[None, :] + np.arange(len(steps))[:, None]] = steps
        self._fill[last] += len(steps)
        self._note_full(last)

    def _note_full(self, chunks: np.ndarray) -> None:
        full = chunks[self._fill[chunks] == self.chunk_size]
        if len(full):
            self._unindexed.append(full)

    def _flush_index(self) -> None:
        if self._unindexed:
            chunks = np.unique(np.concatenate(self._unindexed))
            self._unindexed = []
            self._index_chunks(chunks[(self._ref[chunks] > 0) & (self._fill[chunks] == self.chunk_size)
                                      & ~self._indexed[chunks]])

    def _hash_rows(self, rows: np.ndarray) -> np.ndarray:
        """A 64-bit hash of each row of tokens (a match is confirmed on the tokens themselves, see _match)."""
        rows = rows.view(np.uint64) if rows.dtype == np.int64 and rows.flags.c_contiguous else rows.astype(np.uint64)
        return rows @ self._hash_mult  # wraps modulo 2**64

    @staticmethod
    def _index_key(parent: int, h: int) -> int:
        return (int(parent) + 1) << 64 | int(h)  # ints: numpy's would overflow

    def _candidates(self, parent: int, h: int) -> list[int]:
        """The indexed full chunks under `parent` whose tokens hash to h."""
        match = self._index.get(self._index_key(parent, h), [])
        return [match] if isinstance(match, int) else match

    def _index_chunks(self, chunks: np.ndarray, hashes: np.ndarray | None = None) -> None:
        """Make full chunks matchable by add_seq: (parent, token hash) -> chunks. hashes: their token hashes, where
        known."""
        self._hash[chunks] = self._hash_rows(self._tok[chunks]) if hashes is None else hashes
        keys = [self._index_key(p, h) for p, h in zip(self._parent[chunks].tolist(), self._hash[chunks].tolist())]
        index = self._index
        if len(set(keys)) == len(keys) and index.keys().isdisjoint(keys):  # the usual case: no equal keys
            index.update(zip(keys, chunks.tolist()))
        else:
            for key, c in zip(keys, chunks.tolist()):
                match = index.get(key)
                if match is None:
                    index[key] = c
                elif isinstance(match, int):
                    index[key] = [match, c]
                    self._duplicates += 1
                else:
                    match.append(c)
        self._indexed[chunks] = True

    def _drop_from_index(self, c: int) -> None:
        key = self._index_key(int(self._parent[c]), int(self._hash[c]))
        match = self._index[key]
        if isinstance(match, int):
            del self._index[key]
        else:
            match.remove(c)
            if len(match) == 1:
                self._index[key] = match[0]
                self._duplicates -= 1
        self._indexed[c] = False

    def _match(self, pieces: np.ndarray, hashes: np.ndarray) -> list[int]:
        """The chunks of the longest path of full chunks equal to pieces[0], pieces[1], ... (the first sibling, in
        key order, where several match). Starts from the previous match where it still holds (sequences that share
        a long prompt: one comparison instead of a lookup per chunk)."""
        path = []
        if self._last_match is not None and not self._duplicates:  # without duplicate siblings a match is unique
            prev = self._last_match[: len(hashes)]
            ok = ((self._ref[prev] > 0) & self._indexed[prev] & (self._hash[prev] == hashes[: len(prev)])
                  & (self._parent[prev] == np.concatenate(([-1], prev[:-1]))))
            path = prev[: len(prev) if ok.all() else int(np.argmin(ok))].tolist()
        node = path[-1] if path else -1
        for i, h in enumerate(hashes[len(path) :].tolist(), start=len(path)):
            match = self._candidates(node, h)
            if not match:
                break
            if len(match) > 1:
                match = sorted((c for c in match if np.array_equal(self._tok[c], pieces[i])),
                               key=lambda c: self._key[c])
                if not match:
                    break
            node = match[0]
            path.append(node)
        if path and not np.array_equal(self._tok[path], pieces[: len(path)]):  # a hash collision: compare each level
            good = (self._tok[path] == pieces[: len(path)]).all(axis=1)
            path = path[: int(np.argmin(good))]
        self._last_match = np.asarray(path, dtype=np.int64)
        return path

    def _batch_tree(self, keys: np.ndarray, nf: np.ndarray):
        """The prefix tree of sequences whose piece j has key keys[i, j] (j < nf[i]): node[i, j] (-1 past nf[i]),
        and per node its owner (first sequence through it), parent node (-1: the root) and depth. Nodes are
        numbered depth by depth."""
        n, depth = keys.shape
        node = np.full((n, depth), -1, np.int64)
        prev = np.full(n, -1, np.int64)
        owner, parent, level = [], [], []
        count = 0
        for j in range(depth):
            seqs = np.flatnonzero(nf > j)
            p, key = prev[seqs], keys[seqs, j]
            order = np.lexsort((key, p))  # stable: a group's first entry is its first sequence
            p, key = p[order], key[order]
            starts = np.ones(len(seqs), bool)
            starts[1:] = (p[1:] != p[:-1]) | (key[1:] != key[:-1])
            ids = np.empty(len(seqs), np.int64)
            ids[order] = count + np.cumsum(starts) - 1
            node[seqs, j] = prev[seqs] = ids
            owner.append(seqs[order[starts]])
            parent.append(p[starts])
            level.append(np.full(int(starts.sum()), j))
            count += len(owner[-1])
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
        return node, cat(owner), cat(parent), cat(level)

    def _batch_tree_holds(self, toks: list, node: np.ndarray, owner: np.ndarray, nf: np.ndarray) -> bool:
        """Every sequence's full pieces equal those of the owners of its nodes (no hash collision grouped them)."""
        size = self.chunk_size
        owners = _at(owner, node)
        others = ((owners >= 0) & (owners < np.arange(len(toks))[:, None])).sum(axis=1)  # a prefix of each path
        one_owner = (owners == owners[:, :1]) | (np.arange(owners.shape[1]) >= others[:, None])
        for i in np.flatnonzero(others).tolist():
            o = owners[i, : others[i]]
            cuts = [0, *([] if one_owner[i].all() else (np.flatnonzero(o[1:] != o[:-1]) + 1).tolist()), int(others[i])]
            for a, b in zip(cuts[:-1], cuts[1:]):
                if not (toks[i][a * size : b * size] == toks[o[a]][a * size : b * size]).all():
                    return False
        return True

    def _match_nodes(self, toks: list, hashes: np.ndarray, owner, parent, level) -> np.ndarray:
        """The existing full chunk each batch node matches (-1: none), as add_seq matches: down from the root while
        the parent matched; among equal siblings, the first in key order."""
        size = self.chunk_size
        chunk_of = np.full(len(owner), -1, np.int64)
        if not self._index:
            return chunk_of
        bounds = np.searchsorted(level, np.arange(int(level.max(initial=-1)) + 2))
        for j in range(len(bounds) - 1):
            nodes = np.arange(bounds[j], bounds[j + 1])
            pc = np.where(parent[nodes] >= 0, chunk_of[np.maximum(parent[nodes], 0)], -1)
            live = (parent[nodes] < 0) | (pc >= 0)
            if not live.any():
                break
            for nd, p in zip(nodes[live].tolist(), pc[live].tolist()):
                o = int(owner[nd])
                match = self._candidates(p, int(hashes[o, j]))
                if match:
                    piece = toks[o][j * size : (j + 1) * size]
                    equal = [c for c in match if np.array_equal(self._tok[c], piece)]
                    if equal:
                        chunk_of[nd] = min(equal, key=lambda c: self._key[c])
        return chunk_of

    def _grow_seqs(self, n: int) -> None:
        """Per-sequence arrays with room for ids below n."""
        while n > len(self._seq_last):
            grow = len(self._seq_last)
            self._seq_last = np.concatenate((self._seq_last, np.full(grow, -1, np.int64)))
            self._seq_row = np.concatenate((self._seq_row, np.full(grow, -1, np.int64)))
            self._seq_key = np.concatenate((self._seq_key, np.zeros(grow, np.int64)))

    def _alloc(self, n: int) -> np.ndarray:
        new = self._free[self._n_free - n : self._n_free][::-1].copy()
        self._n_free -= n
        self._key[new] = self._new_keys(n)
        return new

    def _new_keys(self, n: int) -> np.ndarray:
        self._keys += n
        return np.arange(self._keys - n, self._keys)

    def _new_seq_id(self) -> int:
        seq_id = self._next_id
        self._grow_seqs(seq_id + 1)
        self._seq_key[seq_id] = self._new_keys(1)[0]
        self._next_id += 1
        self._n_live += 1
        return seq_id

    def _path(self, last: int) -> list[int]:
        """Chunk ids from `last` up to the root (leaf first)."""
        parent, path = self._parent, []
        while last >= 0:
            path.append(last)
            last = int(parent[last])
        return path

    def _last(self, seq_id) -> int:
        if (isinstance(seq_id, (bool, np.bool_)) or not isinstance(seq_id, (int, np.integer))
                or not 0 <= seq_id < self._next_id or self._seq_last[seq_id] < 0):
            live = np.flatnonzero(self._seq_last >= 0)[:8].tolist()
            raise ValueError(f"seq_id {seq_id!r} is not a live sequence of this cache (live: {live}...)")
        return int(self._seq_last[seq_id])

    def _check_seq_ids(self, seq_ids) -> np.ndarray:
        ids = seq_ids.cpu().numpy() if isinstance(seq_ids, torch.Tensor) else np.asarray(seq_ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise TypeError(f"seq_ids must be a sequence of ints (1-D sequence ids), got {type(seq_ids).__name__}")
        ids = ids.astype(np.int64)
        bad = ids[(ids < 0) | (ids >= self._next_id)]
        if not len(bad):
            bad = ids[self._seq_last[ids] < 0]
        if len(bad):
            self._last(int(bad[0]))  # raises, naming it
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"seq_ids must be distinct, got {len(ids)} ids of which {len(np.unique(ids))} distinct")
        return ids

    def _reserve(self, n_chunks: int) -> None:
        """Fail before any change if the pool cannot take n_chunks more, so an overflow leaves the cache as it was."""
        if n_chunks > self._n_free:
            raise RuntimeError(
                f"ChunkKVCache is full: this needs {n_chunks} free chunks, {self._n_free} of capacity_chunks="
                f"{self.capacity_chunks} are free; remove sequences or create the cache with a larger capacity_chunks"
            )

    def _write_chunks(self, chunks: np.ndarray, k: torch.Tensor, v: torch.Tensor, first: int) -> None:
        """Tokens first.. of k, v into `chunks` (consecutive chunk-size pieces; the last may be partial)."""
        size = self.chunk_size
        x = self._layered(k, v, first)  # (layers, 2, tokens, H, D)
        n_full, rest = divmod(x.shape[2], size)
        if n_full:
            index = torch.from_numpy(chunks[:n_full]).to(self.device)
            self._kv.index_copy_(2, index, x[:, :, : n_full * size].unflatten(2, (n_full, size)).transpose(3, 4))
        if rest:
            self._kv[:, :, int(chunks[-1]), :, :rest] = x[:, :, n_full * size :].transpose(2, 3)

    def _write_chunks_of(self, chunks: np.ndarray, kparts: list, vparts: list) -> None:
        """K/V into whole chunks, every layer: the parts ((n_layers,) tokens, H, D) concatenated, each padded to a
        whole number of chunks, fill `chunks` in order; one index_copy_ per pool. Slots past a chunk's fill get
        zeros (never read)."""
        if not len(chunks):
            return
        size, dim = self.chunk_size, 0 if self.n_layers == 1 else 1
        index = torch.from_numpy(chunks).to(self.device)
        for pools, parts in ((self.k_pools, kparts), (self.v_pools, vparts)):
            padded = []
            for part in parts:
                padded.append(part)
                if part.shape[dim] % size:
                    shape = list(part.shape)
                    shape[dim] = size - shape[dim] % size
                    padded.append(part.new_zeros(shape))
            x = torch.cat([part.to(self.device) for part in padded], dim)  # (..., chunks * size, H, D)
            x = x.unflatten(dim, (len(chunks), size)).transpose(dim + 1, dim + 2)  # (..., chunks, H, size, D)
            for layer, pool in enumerate(pools):
                pool.index_copy_(0, index, x if dim == 0 else x[layer])

    def _layered(self, k: torch.Tensor, v: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Tokens first.. of k, v ((n_layers,) tokens, H, D) as one (n_layers, 2, tokens, H, D) tensor on the cache's
        device."""
        if self.n_layers == 1:
            k, v = k[None], v[None]
        return torch.stack((k[:, first:], v[:, first:]), 1).to(self.device)

    def _changed(self) -> None:
        self._plan, self._rows_list, self._min_room = None, None, None

    def _check_layer(self, layer) -> None:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be an int in [0, {self.n_layers}), got {layer!r}")

    def _check_tokens(self, name: str, tokens) -> np.ndarray:
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.cpu().numpy()
        try:
            out = np.asarray(tokens)
        except (TypeError, ValueError):
            out = None
        if out is None or out.ndim != 1 or (out.size and out.dtype.kind not in "iu"):
            raise TypeError(f"{name} must be a sequence of ints (1-D token ids), got {type(tokens).__name__}"
                            + (f" of dtype {out.dtype}" if out is not None and out.ndim == 1 else ""))
        return out.astype(np.int64, copy=False)

    def _check_batch(self, tokens, k, v) -> tuple[list, list, list]:
        """add_seqs' arguments, checked: token arrays and k, v lists of one entry per sequence."""
        for name, x in (("tokens", tokens), ("k", k), ("v", v)):
            if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__len__") or not hasattr(x, "__iter__"):
                raise TypeError(f"{name} must be a sequence with one entry per new sequence, got {type(x).__name__}")
        try:
            sizes = len(tokens), len(k), len(v)
        except TypeError as exc:  # e.g. a 0-d tensor
            raise TypeError(f"tokens, k and v must be sequences with one entry per new sequence ({exc})") from None
        if not sizes[0] == sizes[1] == sizes[2]:
            raise ValueError(f"tokens, k and v must have one entry per new sequence each, got {sizes[0]}, "
                             f"{sizes[1]} and {sizes[2]}")
        toks = [self._check_tokens(f"tokens[{i}]", t) for i, t in enumerate(tokens)]
        empty = [i for i, t in enumerate(toks) if not len(t)]
        if empty:
            raise ValueError(f"tokens[{empty[0]}] must hold at least one token")
        ks, vs = list(k), list(v)
        lead = () if self.n_layers == 1 else (self.n_layers,)
        for i, (t, a, b) in enumerate(zip(toks, ks, vs)):
            shape = (*lead, len(t), self.n_heads, self.d_head)
            if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == shape == b.shape
                    and a.dtype == self.dtype == b.dtype):
                self._check_kv(a, b, len(t), (f"k[{i}]", f"v[{i}]"))  # raises, naming the argument
        return toks, ks, vs

    def _check_kv(self, k, v, n_tokens: int, names=("k", "v")) -> None:
        lead = 0 if self.n_layers == 1 else 1
        for name, t in zip(names, (k, v)):
            check_tensor(name, t, ndim=3 + lead)  # (n_layers, tokens, H, D) when the cache has several layers
            if lead:
                check_dim(name, t, 0, self.n_layers, "n_layers of the cache")
            check_dim(name, t, lead, n_tokens, "tokens")
            check_dim(name, t, lead + 1, self.n_heads, "n_heads of the cache")
            check_dim(name, t, lead + 2, self.d_head, "d_head of the cache")
            if t.dtype != self.dtype:
                raise TypeError(f"{name} must have the cache's dtype {self.dtype}, got {t.dtype}")
