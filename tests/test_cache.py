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


def lock_step_world(n_seqs, capacity=4096, seed=0, tail=None):
    """n_seqs sequences under a shared prompt of 2 full chunks, with tails of 0-9 tokens (a tail of 0 or 4 ends the
    sequence on a full chunk, shared or not), some sharing a document chunk; returns (cache, model)."""
    rng = np.random.default_rng(seed)
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=capacity)
    model = {}
    for n in range(n_seqs):
        doc = [5, 5, 5, 5] if n % 3 == 0 else []
        tokens = [1] * 8 + doc + [100 + n] * int(rng.integers(0, 10) if tail is None else tail)
        model[cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))] = tokens
    return cache, model


def lock_step(cache, model, step):
    order = cache.seq_ids
    toks = [(step * 7 + i) % 3 for i in range(len(order))]
    for s, t in zip(order, toks):
        model[s] = model[s] + [t]
    kv = torch.stack([kv_for(model[s])[-1] for s in order])
    return order, toks, kv


def test_lock_step_many_sequences_cross_borders_like_single_appends():
    """300 sequences, 2.5 chunks of lock-step steps (every sequence crosses a border, some from a shared full
    chunk): the batched path (one write, vectorized chunk opening, incremental plan) equals one append_token per
    sequence, and its plan equals a rebuild; row order never moves during appends."""
    many, model = lock_step_world(300)
    one, _ = lock_step_world(300)
    first_order = many.seq_ids
    plans = set()
    for step in range(2 * CHUNK + 2):
        order, toks, kv = lock_step(many, model, step)
        many.append_tokens(None, toks, kv, 2 * kv)
        for s, t, k in zip(order, toks, kv):
            one.append_token(s, t, k, 2 * k)
        plans.add(id(many.plan()))
        assert many.seq_ids == first_order == one.seq_ids
        assert host_equal(many.plan().host, one.plan().host)
        assert many.plan().private_len.tolist() == one.plan().private_len.tolist()
    assert len(plans) >= 3  # a new plan at each border
    check_invariants(many, model)


def test_reserve_and_device_half_equal_append_tokens_and_are_idempotent():
    """The graph-capturable split: reserve (host) + step_lengths + write_kv (device, run twice as a graph warm-up
    would) leaves the same cache as append_tokens(None, ...); reserve reports a new plan only at borders."""
    a, model = lock_step_world(40, tail=1)  # every sequence at the same fill: in step, as in c6
    b, _ = lock_step_world(40, tail=1)
    changed_at = []
    for step in range(2 * CHUNK + 1):
        _, toks, kv = lock_step(a, model, step)
        a.append_tokens(None, toks, kv, 2 * kv)
        before = b.plan()
        changed = b.reserve(np.asarray(toks))
        assert changed == (b.plan() is not before)
        assert changed == any((len(t) - 1) % CHUNK == 0 for t in model.values())  # some sequence crossed a border
        changed_at.append(changed)
        n = torch.tensor(b.appended, dtype=torch.int32)
        for _ in range(2):
            b.step_lengths(n)
            b.write_kv(kv, 2 * kv)
        assert torch.equal(a.k_pool, b.k_pool) and torch.equal(a.v_pool, b.v_pool)
        assert a.plan().private_len.tolist() == b.plan().private_len.tolist()
    assert [i for i, c in enumerate(changed_at) if c] == [CHUNK - 1, 2 * CHUNK - 1]  # once per chunk of steps
    check_invariants(b, model)


def test_plan_tensors_keep_their_addresses_across_a_border():
    """A lock-step border makes a new plan object, but its tensors stay where they were (the buffers are sized for
    the pool), and shared-chunk tensors are the same objects (incremental update)."""
    cache, model = lock_step_world(50)
    plan = cache.plan()
    ptrs = {name: getattr(plan, name).data_ptr() for name in ("private_chunk", "private_len", "shared_chunk")}
    while cache.plan() is plan:
        _, toks, kv = lock_step(cache, model, 0)
        cache.append_tokens(None, toks, kv, 2 * kv)
    new = cache.plan()
    assert new.shared_chunk is plan.shared_chunk
    assert {name: getattr(new, name).data_ptr() for name in ptrs} == ptrs
    check_invariants(cache, model)


def test_bad_input_is_rejected_and_leaves_the_cache_unchanged():
    cache, model = lock_step_world(6, capacity=64)
    ids = cache.seq_ids
    kv = torch.zeros(len(ids), HEADS, DIM)
    dead = max(ids) + 1
    cases = [
        (ValueError, "distinct", lambda: cache.append_tokens([ids[0], ids[0]], [1, 2], kv[:2], kv[:2])),
        (ValueError, "not a live sequence", lambda: cache.append_tokens([ids[0], dead], [1, 2], kv[:2], kv[:2])),
        (ValueError, "not a live sequence", lambda: cache.append_tokens([-1], [1], kv[:1], kv[:1])),
        (TypeError, "seq_ids", lambda: cache.append_tokens([0.5], [1], kv[:1], kv[:1])),
        (ValueError, "one to one", lambda: cache.append_tokens(ids[:2], [1], kv[:2], kv[:2])),
        (TypeError, "tokens", lambda: cache.append_tokens(ids[:1], [1.5], kv[:1], kv[:1])),
        (TypeError, "tokens", lambda: cache.append_tokens(None, [[1]] * len(ids), kv, kv)),
        (ValueError, "k.shape", lambda: cache.append_tokens(None, [1] * len(ids), kv[:-1], kv)),
        (ValueError, "one token per sequence", lambda: cache.reserve([1] * (len(ids) + 1))),
        (TypeError, "dtype", lambda: cache.append_tokens(None, [1] * len(ids), kv.double(), kv.double())),
        (ValueError, "d_head", lambda: cache.append_token(ids[0], 1, torch.zeros(HEADS, DIM + 1), kv[0])),
        (TypeError, "k must be a torch.Tensor", lambda: cache.append_token(ids[0], 1, [0.0], kv[0])),
        (ValueError, "at least one token", lambda: cache.add_seq([], kv[:0], kv[:0])),
        (ValueError, "tokens", lambda: cache.add_seq([1, 2], kv[:1], kv[:1])),
        (ValueError, "not a live sequence", lambda: cache.fork(dead)),
        (ValueError, "not a live sequence", lambda: cache.remove_seq(True)),
        (ValueError, "layer", lambda: cache.gather_kv(ids[0], layer=1)),
    ]
    before = snapshot(cache)
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()
        assert snapshots_equal(snapshot(cache), before), match
    check_invariants(cache, model)


def test_full_cache_during_a_lock_step_border_changes_nothing():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=4)
    model = {}
    for tail in ([7, 7, 7, 7], [8, 8, 8, 8]):  # both end on a full private chunk: the next step opens 2 chunks
        tokens = [1] * 4 + tail
        model[cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))] = tokens
    before = snapshot(cache)
    _, toks, kv = lock_step(cache, {s: list(t) for s, t in model.items()}, 0)
    with pytest.raises(RuntimeError, match="needs 2 free chunks, 1 of capacity_chunks=4"):
        cache.append_tokens(None, toks, kv, 2 * kv)
    assert snapshots_equal(snapshot(cache), before)
    check_invariants(cache, model)


def test_device_names_are_normalized(monkeypatch):
    from tkprefix.cache import normalize_device

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert normalize_device("cuda") == torch.device("cuda", 3)
    assert normalize_device(torch.device("cuda")) == torch.device("cuda", 3)
    assert normalize_device("cuda:1") == torch.device("cuda", 1)
    assert normalize_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device"):
        normalize_device("tpu-ish")


def test_layers_share_one_tree():
    layers = 3
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=32, n_layers=layers)
    per_layer = lambda tokens: torch.stack([(i + 1) * kv_for(tokens) for i in range(layers)])  # noqa: E731
    model = {}
    for tokens in ([1] * 6, [1] * 4 + [2]):
        model[cache.add_seq(tokens, per_layer(tokens), -per_layer(tokens))] = tokens
    for step in range(5):
        order = cache.seq_ids
        for s in order:
            model[s] = model[s] + [step]
        kv = torch.stack([per_layer(model[s])[:, -1] for s in order], dim=1)  # (layers, n, H, D)
        cache.append_tokens(None, [step] * len(order), kv, -kv)
    cache.append_token(order[0], 9, per_layer(model[order[0]] + [9])[:, -1], -per_layer(model[order[0]] + [9])[:, -1])
    model[order[0]] = model[order[0]] + [9]
    for s, tokens in model.items():
        for layer in range(layers):
            k, v = cache.gather_kv(s, layer)
            assert torch.equal(k, (layer + 1) * kv_for(tokens)) and torch.equal(v, -(layer + 1) * kv_for(tokens))
    with pytest.raises(ValueError, match="4 dimensions"):
        cache.add_seq([1], kv_for([1]), kv_for([1]))
    with pytest.raises(ValueError, match="n_layers"):
        cache.add_seq([1], per_layer([1])[:2], per_layer([1])[:2])


@given(ops=operations)
def test_hash_collisions_never_share_different_tokens(ops):
    """Every chunk hashes to 0 here: matching must fall back to comparing tokens, and the cache must behave exactly
    as one with real hashes (same sharing, same plans)."""
    real = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=40)
    colliding = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=40)
    colliding._hash_rows = lambda rows: np.zeros(len(rows), np.uint64)
    models = [{}, {}]
    for op, pick, tokens in ops:
        for cache, model in zip((real, colliding), models):
            apply(cache, model, op, pick, tokens)
    assert models[0] == models[1]
    check_invariants(colliding, models[1])
    assert real.stats() == colliding.stats() and host_equal(real.plan().host, colliding.plan().host)


def test_device_half_rejects_bad_input():
    cache, _ = lock_step_world(5)
    kv = torch.zeros(5, HEADS, DIM)
    cache.reserve(np.zeros(5, np.int64))
    with pytest.raises(TypeError, match="n must be"):
        cache.step_lengths(1)
    with pytest.raises(TypeError, match="n must be"):
        cache.step_lengths(torch.ones(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="n must be"):
        cache.step_lengths(torch.tensor(1.0))
    with pytest.raises(ValueError, match="k must be"):
        cache.write_kv(kv[:4], kv)
    with pytest.raises(TypeError, match="v must be"):
        cache.write_kv(kv, kv.double())
    with pytest.raises(ValueError, match="layer"):
        cache.write_kv(kv, kv, layer=1)
    cache.add_seq([1], kv_for([1]), kv_for([1]))  # the tree changed: reserve first
    with pytest.raises(RuntimeError, match="reserve"):
        cache.step_lengths(torch.tensor(1))


def cache_state(cache):
    """Everything add_seqs must reproduce exactly: ids, tree order, chunk ids and keys, tokens, K/V, plan."""
    live = np.flatnonzero(cache._ref > 0)
    ids = cache.seq_ids
    return (ids, [cache.seq_chunks(s) for s in ids], [cache.tokens(s) for s in ids], cache.chunk_refcounts(),
            cache.free_chunk_ids(), cache._key[live].tolist(), cache._seq_key[ids].tolist(),
            {n: t.tolist() for n, t in cache.plan().host.items()}, cache.plan().private_len.tolist(),
            [[x.tolist() for x in cache.gather_kv(s)] for s in ids])


# sequences of 0-2 full chunks of zeros, then a random tail: much sharing, within the batch and with the tree
batches = st.lists(st.builds(lambda zeros, tail: [0] * zeros + tail, st.sampled_from([0, 4, 8]),
                             st.lists(st.integers(0, 2), max_size=10)).filter(len), max_size=12)


@given(before=operations, batch=batches, collide=st.booleans(), capacity=st.integers(4, 60))
def test_add_seqs_equals_one_add_seq_per_sequence(before, batch, collide, capacity):
    """add_seqs after random operations (so against a tree with shared, partial, forked and removed chunks), then the
    same batch again (now mostly in the tree), leaves exactly the cache that one add_seq per sequence leaves: same
    ids, chunk ids, keys, plan and K/V; with every hash colliding too (grouping falls back to the tokens). A batch
    that does not fit raises and changes nothing."""
    one, many = (ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=capacity)
                 for _ in range(2))
    if collide:
        for cache in (one, many):
            cache._hash_rows = lambda rows: np.zeros(len(rows), np.uint64)
    models = [{}, {}]
    for op, pick, tokens in before:
        for cache, model in zip((one, many), models):
            apply(cache, model, op, pick, tokens)
    model = models[1]
    for _ in range(2):
        free = one.free_chunks
        try:
            ids = [one.add_seq(t, kv_for(t), 2 * kv_for(t)) for t in batch]
        except RuntimeError:
            ids = None  # one by one ran out of chunks part-way; add_seqs must refuse the whole batch
        state = snapshot(many)
        try:
            got = many.add_seqs(batch, [kv_for(t) for t in batch], [2 * kv_for(t) for t in batch])
        except RuntimeError as exc:
            assert ids is None and f"{free} of capacity_chunks={capacity}" in str(exc)
            assert snapshots_equal(snapshot(many), state)
            check_invariants(many, model)
            return
        assert got == ids
        assert cache_state(many) == cache_state(one)
        model.update({s: list(t) for s, t in zip(got, batch)})
        check_invariants(many, model)


def test_add_seqs_shares_within_the_batch_and_with_the_tree():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=32)
    prompt = list(range(8))
    cache.add_seq(prompt[:4], kv_for(prompt[:4]), 2 * kv_for(prompt[:4]))
    batch = [prompt + [20 + i] * i for i in range(4)] + [[7]]
    ids = cache.add_seqs(batch, [kv_for(t) for t in batch], [2 * kv_for(t) for t in batch])
    assert ids == [1, 2, 3, 4, 5]
    refs = cache.chunk_refcounts()
    first, second = cache.seq_chunks(ids[0])
    assert refs[first] == 5 and refs[second] == 4  # the tree's chunk, and the batch's own second chunk
    assert cache.stats()["physical_tokens"] == 8 + 1 + 2 + 3 + 1
    check_invariants(cache, {0: prompt[:4], **{s: t for s, t in zip(ids, batch)}})


def test_add_seqs_of_sequences_the_tree_holds_allocates_nothing():
    cache = ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=4)
    tokens = list(range(8))
    cache.add_seq(tokens, kv_for(tokens), 2 * kv_for(tokens))
    batch = [tokens, tokens[:4]]
    assert cache.add_seqs(batch, [kv_for(t) for t in batch], [2 * kv_for(t) for t in batch]) == [1, 2]
    assert cache.free_chunks == 2 and list(cache.chunk_refcounts().values()) == [3, 2]
    check_invariants(cache, {0: tokens, 1: tokens, 2: tokens[:4]})


def test_add_seqs_with_several_layers_equals_add_seq():
    layers = 3
    per_layer = lambda tokens: torch.stack([(i + 1) * kv_for(tokens) for i in range(layers)])  # noqa: E731
    one, many = (ChunkKVCache(HEADS, DIM, chunk_size=CHUNK, dtype=torch.float32, capacity_chunks=32, n_layers=layers)
                 for _ in range(2))
    batch = [[1] * 6, [1] * 4 + [2], [1] * 8, [3]]
    ids = [one.add_seq(t, per_layer(t), -per_layer(t)) for t in batch]
    assert many.add_seqs(batch, [per_layer(t) for t in batch], [-per_layer(t) for t in batch]) == ids
    assert cache_state(many) == cache_state(one)
    for s, tokens in zip(ids, batch):
        for layer in range(layers):
            k, v = many.gather_kv(s, layer)
            assert torch.equal(k, (layer + 1) * kv_for(tokens)) and torch.equal(v, -(layer + 1) * kv_for(tokens))
    with pytest.raises(ValueError, match=r"k\[0\] must have 4 dimensions"):
        many.add_seqs([[1]], [kv_for([1])], [kv_for([1])])


def test_add_seqs_rejects_bad_input_and_leaves_the_cache_unchanged():
    cache, model = lock_step_world(4, capacity=64)
    good = [[1, 2, 3], [4, 5]]
    kv = [kv_for(t) for t in good]
    cases = [
        (TypeError, "tokens must be a sequence", lambda: cache.add_seqs(5, kv, kv)),
        (TypeError, "k and v must be sequences", lambda: cache.add_seqs(good, torch.tensor(1.0), kv)),
        (ValueError, "one entry per new sequence each, got 2, 1 and 2", lambda: cache.add_seqs(good, kv[:1], kv)),
        (TypeError, r"tokens\[1\] must be a sequence of ints", lambda: cache.add_seqs([[1, 2, 3], [0.5, 1]], kv, kv)),
        (TypeError, r"tokens\[0\] must be a sequence of ints", lambda: cache.add_seqs([1, 2], kv, kv)),
        (ValueError, r"tokens\[1\] must hold at least one token", lambda: cache.add_seqs([[1], []], kv, kv)),
        (ValueError, r"k\[1\].shape\[0\] \(tokens\) must be 2", lambda: cache.add_seqs(good, [kv[0], kv[0]], kv)),
        (TypeError, r"v\[0\] must have the cache's dtype", lambda: cache.add_seqs(good, kv, [kv[0].double(), kv[1]])),
        (TypeError, r"k\[1\] must be a torch.Tensor", lambda: cache.add_seqs(good, [kv[0], None], kv)),
        (RuntimeError, "ChunkKVCache is full", lambda: cache.add_seqs([list(range(100 + 40 * i, 140 + 40 * i))
                                                                       for i in range(8)],
                                                                      [kv_for([0] * 40)] * 8, [kv_for([0] * 40)] * 8)),
    ]
    before = snapshot(cache)
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()
        assert snapshots_equal(snapshot(cache), before), match
    assert cache.add_seqs([], [], []) == []
    assert snapshots_equal(snapshot(cache), before)
    check_invariants(cache, model)


def test_docstring_examples_run():
    import doctest

    import tkprefix.cache

    assert doctest.testmod(tkprefix.cache).failed == 0
