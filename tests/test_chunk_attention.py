"""chunk_attention (two-phase torch path) against the float64 oracle on random prefix trees."""
import torch
from hypothesis import given
from hypothesis import strategies as st

from oracle import hydragen_oracle, rel_err
from tkprefix import ChunkKVCache, chunk_attention


@st.composite
def trees(draw):
    """A random tree of token segments; each sequence is the segments on a root-to-node path plus its own tail."""
    n_segments = draw(st.integers(1, 8))
    parents = [-1] + [draw(st.integers(-1, i - 1)) for i in range(1, n_segments)]
    lengths = [draw(st.integers(1, 40)) for _ in range(n_segments)]
    seqs = draw(st.lists(st.tuples(st.integers(0, n_segments - 1), st.integers(0, 20)), min_size=1, max_size=12))
    return dict(parents=parents, lengths=lengths, seqs=seqs, chunk=draw(st.sampled_from([4, 8, 16])),
                kv_heads=draw(st.integers(1, 2)), group=draw(st.sampled_from([1, 2, 4])),
                steps=draw(st.lists(st.sampled_from(["append", "fork", "remove"]), max_size=4)),
                seed=draw(st.integers(0, 2**31 - 1)))


class TreeWorld:
    """Owns the true K/V of every token path, so the oracle never looks inside the cache."""

    def __init__(self, case, dtype, dim=16):
        self.gen = torch.Generator().manual_seed(case["seed"])
        self.dtype, self.dim, self.heads = dtype, dim, case["kv_heads"]
        self.segments = []  # (tokens, k, v) of each segment's full path from the root
        for i, (parent, length) in enumerate(zip(case["parents"], case["lengths"])):
            tokens = [1000 * (i + 1) + t for t in range(length)]
            k, v = self.rand(length), self.rand(length)
            if parent >= 0:
                p_tokens, p_k, p_v = self.segments[parent]
                tokens, k, v = p_tokens + tokens, torch.cat([p_k, k]), torch.cat([p_v, v])
            self.segments.append((tokens, k, v))
        self.cache = ChunkKVCache(self.heads, dim, case["chunk"], dtype, capacity_chunks=4096)
        self.truth = {}  # seq_id → (tokens, k, v)
        for n, (segment, tail) in enumerate(case["seqs"]):
            tokens, k, v = self.segments[segment]
            tokens = tokens + [10**6 + 100 * n + t for t in range(tail)]
            k, v = torch.cat([k, self.rand(tail)]), torch.cat([v, self.rand(tail)])
            self.truth[self.cache.add_seq(tokens, k, v)] = (tokens, k, v)

    def rand(self, n):
        return torch.randn(n, self.heads, self.dim, generator=self.gen, dtype=torch.float64).to(self.dtype)

    def step(self, op):
        seq = sorted(self.truth)[0]
        tokens, k, v = self.truth[seq]
        if op == "append":
            nk, nv = self.rand(1), self.rand(1)
            self.cache.append_token(seq, 7, nk[0], nv[0])
            self.truth[seq] = (tokens + [7], torch.cat([k, nk]), torch.cat([v, nv]))
        elif op == "fork":
            self.truth[self.cache.fork(seq)] = (tokens, k, v)
        elif op == "remove" and len(self.truth) > 1:
            self.cache.remove_seq(seq)
            del self.truth[seq]

    def check(self, group, tolerance):
        order = self.cache.seq_ids
        q = torch.randn(len(order), self.heads * group, self.dim, generator=self.gen, dtype=torch.float64)
        q = q.to(self.dtype)
        out = chunk_attention(q, self.cache, backend="torch")
        ref = torch.stack([
            hydragen_oracle(q[r][None, None], self.truth[s][1][None], self.truth[s][2][None], [], [])[0, 0]
            for r, s in enumerate(order)
        ])
        assert out.shape == q.shape and out.dtype == self.dtype
        assert rel_err(out, ref) <= tolerance


@given(case=trees())
def test_chunk_attention_float64_equals_naive(case):
    world = TreeWorld(case, torch.float64)
    world.check(case["group"], 1e-10)
    for op in case["steps"]:  # the tree changes between decode steps
        world.step(op)
        world.check(case["group"], 1e-10)


@given(case=trees())
def test_chunk_attention_bf16_within_tolerance(case):
    TreeWorld(case, torch.bfloat16).check(case["group"], 2e-2)


def test_plan_describes_shared_and_private_chunks():
    cache = ChunkKVCache(1, 4, chunk_size=2, dtype=torch.float64, capacity_chunks=16)
    kv = torch.randn(5, 1, 4, dtype=torch.float64)
    for tail in (10, 11, 12):
        cache.add_seq([1, 2, 3, 4, tail], kv, kv)
    plan = cache.plan()
    h = {name: values.tolist() for name, values in plan.host.items()}
    assert h["shared_chunk"] == [0, 1]
    assert h["shared_row_start"] == [0, 0] and h["shared_row_end"] == [3, 3]
    assert h["shared_partial_offset"] == [0, 3, 6]
    assert plan.private_len.tolist() == [1, 1, 1] and h["seq_private_offset"] == [0, 1, 2, 3]
    assert h["seq_partial_index"] == [0, 3, 1, 4, 2, 5]
    assert plan.shared_chunk.dtype == torch.int32 and plan.n_partial_rows == 6
