"""ChunkKVCache invariants under random add / append / fork / remove sequences, checked against a plain model."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tkprefix import ChunkKVCache

CHUNK, HEADS, DIM = 4, 2, 3


def kv_for(tokens):
    """K/V as a function of the token prefix, so equal prefixes carry equal K and V (as in a real model)."""
    out = torch.empty(len(tokens), HEADS, DIM)
    for i in range(len(tokens)):
        gen = torch.Generator().manual_seed(hash(tuple(tokens[: i + 1])) % 2**31)
        out[i] = torch.randn(HEADS, DIM, generator=gen)
    return out


def host_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[name], b[name]) for name in a)


def check_invariants(cache, model):
    """model: seq_id → token list. Everything the cache reports must follow from it."""
    assert sorted(cache.seq_ids) == sorted(model) and cache.n_seqs == len(model)
    refcounts = cache.chunk_refcounts()
    allocated, free = set(refcounts), cache.free_chunk_ids()
    assert len(allocated) + cache.free_chunks == cache.capacity_chunks, "leaked or double-freed chunk"
    assert allocated.isdisjoint(free) and len(set(free)) == len(free) == cache.free_chunks
    uses, through, length = {}, {}, {}  # chunk -> #sequences, -> [(seq, index in path)], -> valid tokens
    for s in model:
        assert cache.tokens(s) == model[s] and cache.seq_len(s) == len(model[s])
        k, v = cache.gather_kv(s)
        assert torch.equal(k, kv_for(model[s])) and torch.equal(v, 2 * kv_for(model[s]))
        path = cache.seq_chunks(s)
        assert len(path) == -(-len(model[s]) // CHUNK)
        for i, c in enumerate(path):
            uses[c] = uses.get(c, 0) + 1
            through.setdefault(c, []).append((s, i))
            length[c] = min(CHUNK, len(model[s]) - i * CHUNK)
    assert uses == refcounts, "reference counts differ from the sequences' paths"
    order = cache.seq_ids
    row = {s: r for r, s in enumerate(order)}
    for c, seqs in through.items():
        rows = sorted(row[s] for s, _ in seqs)
        assert rows == list(range(rows[0], rows[-1] + 1)), "sharing sequences are not contiguous (depth-first order)"
        if len(seqs) > 1:
            assert length[c] == CHUNK, "a partial chunk is shared"
            prefixes = {tuple(model[s][: (i + 1) * CHUNK]) for s, i in seqs}
            assert len(prefixes) == 1, "a shared chunk is shared by sequences with different tokens"
    plan = cache.plan()  # built or updated in place; must equal a rebuild from scratch
    rebuilt = cache._build_plan()
    assert rebuilt.pop("rows").tolist() == order
    assert host_equal(plan.host, rebuilt), "the incremental plan differs from a rebuild"
    for name, values in plan.host.items():
        assert getattr(plan, name).tolist() == values.tolist()
    private = [(c, length[c]) for s in order for c in cache.seq_chunks(s) if refcounts[c] == 1]
    assert plan.host["private_chunk"].tolist() == [c for c, _ in private]
    assert plan.private_len.tolist() == [n for _, n in private], "device lengths differ from the tokens"
    assert plan.n_seqs == len(model) and plan.n_partial_rows == sum(n for n in refcounts.values() if n > 1)
    stats = cache.stats()
    assert stats["logical_tokens"] == sum(len(t) for t in model.values())
    assert stats["physical_tokens"] == sum(length.values())


def snapshot(cache):
    """Everything observable, to check that a failed call changed nothing."""
    ids = cache.seq_ids
    return (ids, [cache.tokens(s) for s in ids], cache.chunk_refcounts(), cache.free_chunk_ids(),
            {n: t.tolist() for n, t in cache.plan().host.items()}, cache.plan().private_len.tolist(),
            cache.k_pool.clone(), cache.v_pool.clone())


def snapshots_equal(a, b):
    return a[:6] == b[:6] and torch.equal(a[6], b[6]) and torch.equal(a[7], b[7])


operations = st.lists(
    st.tuples(st.sampled_from(["add", "append", "append_some", "append_all", "fork", "remove"]),
              st.integers(0, 10**6), st.lists(st.integers(0, 2), min_size=1, max_size=14)),
    max_size=25,
)


def apply(cache, model, op, pick, tokens):
    """One random operation on the cache and the model; a full cache must raise and change nothing."""
    live = sorted(model)
    target = live[pick % len(live)] if live else None
    before = snapshot(cache)
    try:
        if op == "add":
            model[cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))] = list(tokens)
        elif op == "append" and target is not None:
            new = model[target] + [tokens[0]]
            kv = kv_for(new)[-1]
            cache.append_token(target, tokens[0], kv, 2 * kv)
            model[target] = new
        elif op in ("append_some", "append_all") and live:
            # append_some: a subset in a scrambled order (the general path); append_all: every sequence, row order
            ids = [s for i, s in enumerate(live) if (pick >> (i % 20)) & 1][::-1] if op == "append_some" else None
            order = cache.seq_ids if ids is None else ids
            toks = [tokens[i % len(tokens)] for i in range(len(order))]
            kv = torch.stack([kv_for(model[s] + [t])[-1] for s, t in zip(order, toks)]) if order else kv_for([])
            cache.append_tokens(ids, toks, kv, 2 * kv)
            for s, t in zip(order, toks):
                model[s] = model[s] + [t]
        elif op == "fork" and target is not None:
            model[cache.fork(target)] = list(model[target])
        elif op == "remove" and target is not None:
            cache.remove_seq(target)
            del model[target]
    except RuntimeError as exc:
        assert "ChunkKVCache is full" in str(exc)
        assert snapshots_equal(snapshot(cache), before), "overflow changed the cache"


@given(ops=operations, capacity=st.integers(4, 40))
def test_cache_invariants_under_random_operations(ops, capacity):
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=capacity)
    model: dict[int, list[int]] = {}
    for op, pick, tokens in ops:
        apply(cache, model, op, pick, tokens)
        check_invariants(cache, model)


def test_full_matching_chunks_are_shared_and_partial_ones_are_not():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=32)
    a = list(range(10))  # two full chunks + a partial of 2
    for tokens in (a, a, a[:8] + [77], a[:5]):
        cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))
    stats = cache.stats()
    # chunks: [0..3] shared by 3 seqs, [4..7] by 3, partial [8,9] ×2 (private copies), [77], [4] partial
    assert stats["shared_chunks"] == 2
    assert stats["physical_tokens"] == 8 + 2 + 2 + 1 + 1
    assert cache.plan().n_shared == 2


def test_remove_frees_only_unused_chunks():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=8)
    tokens = list(range(9))
    a = cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))
    b = cache.fork(a)
    assert cache.free_chunks == 8 - 4  # 2 shared full chunks + 2 private partials
    cache.remove_seq(a)
    assert cache.free_chunks == 8 - 3
    cache.remove_seq(b)
    assert cache.free_chunks == 8 and cache.seq_ids == []


def test_overflow_is_a_clear_error_and_leaves_the_cache_unchanged():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=3)
    tokens = list(range(8))
    cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))
    with pytest.raises(RuntimeError, match="needs 2 free chunks, 1 of capacity_chunks=3"):
        cache.add_seq([9] * 8, kv_for([9] * 8), kv_for([9] * 8))
    assert cache.free_chunks == 1 and len(cache.seq_ids) == 1


def test_plan_is_cached_until_the_tree_changes():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=8)
    a = cache.add_seq([1, 2, 3, 4], kv_for([1, 2, 3, 4]), kv_for([1, 2, 3, 4]))
    plan = cache.plan()
    assert cache.plan() is plan
    cache.append_token(a, 5, kv_for([1, 2, 3, 4, 5])[-1], kv_for([1, 2, 3, 4, 5])[-1])  # opens a new chunk
    assert cache.plan() is not plan


def test_append_into_a_partial_chunk_updates_the_plan_in_place():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=8)
    a = cache.add_seq([1, 2, 3, 4, 5], kv_for([1, 2, 3, 4, 5]), kv_for([1, 2, 3, 4, 5]))
    b = cache.add_seq([1, 2, 3, 4, 6], kv_for([1, 2, 3, 4, 6]), kv_for([1, 2, 3, 4, 6]))
    plan = cache.plan()
    lens = plan.private_len
    cache.append_token(b, 9, kv_for([1, 2, 3, 4, 6, 9])[-1], kv_for([1, 2, 3, 4, 6, 9])[-1])
    assert cache.plan() is plan and plan.private_len is lens  # same tensors: a captured CUDA graph stays valid
    assert plan.private_len.tolist() == [1, 2]
    fresh = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=8)
    for seq in (a, b):
        fresh.add_seq(cache.tokens(seq), *cache.gather_kv(seq))
    assert host_equal(fresh.plan().host, plan.host) and fresh.plan().private_len.tolist() == [1, 2]


@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=6), steps=st.integers(1, 6),
       every=st.booleans())
def test_append_tokens_equals_one_append_per_sequence(lengths, steps, every):
    """append_tokens for a list of ids, or for every sequence (seq_ids=None, the lock-step path), equals one
    append_token per sequence in the same order."""
    one, many = (ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=64) for _ in range(2))
    model = {}
    for n, length in enumerate(lengths):
        tokens = [0] * 4 + [n + 1] * (length - 1)  # every sequence shares the first full chunk
        for cache in (one, many):
            seq = cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))
        model[seq] = tokens
    for step in range(steps):
        ids = many.seq_ids if every else sorted(model)
        for seq in ids:
            model[seq] = model[seq] + [step]
        kv = torch.stack([kv_for(model[s])[-1] for s in ids])
        for seq, k in zip(ids, kv):
            one.append_token(seq, step, k, 2 * k)
        many.append_tokens(None if every else ids, [step] * len(ids), kv, 2 * kv)
        check_invariants(many, model)
        assert host_equal(many.plan().host, one.plan().host)
        assert many.plan().private_len.tolist() == one.plan().private_len.tolist()
