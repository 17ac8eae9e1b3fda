"""TK ChunkAttention (tkprefix.tk_chunk) against a float64 oracle on random prefix trees.

* CPU (always): the host-side work lists (`build_work`) are checked by executing them with a float64 emulator of the
  kernels' contract (items → partial rows → LSE merge), so a wrong item, row or merge list fails without a GPU.
* GPU (`gpu` marker; skipped with the reason without an sm_90 GPU and the built kernels): random trees of depth 1–4
  and fan-out up to 64, lengths not multiples of the chunk, sequences added / forked / removed / appended to between
  decode steps; outputs and partials poisoned with NaN first; d 64 and 128, bf16 and fp16, GQA; CUDA-graph replay
  after in-place appends; bad input rejected with errors naming the argument.
"""
from __future__ import annotations

import math
import random

import pytest
import torch

from tkprefix.cache import ChunkKVCache
from tkprefix import tk_chunk
from tk_family import gpu_mark


# ------------------------------------------------------------------------------------------------ random worlds
class World:
    """A prefix tree of random segments; owns the true K/V of every live sequence (the oracle never reads the cache)."""

    def __init__(self, seed, kv_heads, dim, dtype, device, depth, max_fanout, max_seqs, chunk=64,
                 seg_len=(1, 200), tail=(0, 150), capacity=4096):
        self.rng = random.Random(seed)
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.kv_heads, self.dim, self.dtype, self.device, self.chunk = kv_heads, dim, dtype, device, chunk
        self.cache = ChunkKVCache(kv_heads, dim, chunk, dtype, device, capacity_chunks=capacity)
        self.truth = {}  # seq_id -> (tokens, k, v) float64 on CPU
        self.next_token = 1
        self._grow([], torch.zeros(0, kv_heads, dim, dtype=torch.float64), torch.zeros(0, kv_heads, dim, dtype=torch.float64),
                   0, depth, max_fanout, max_seqs, seg_len, tail)

    def rand(self, n):
        return torch.randn(n, self.kv_heads, self.dim, generator=self.gen, dtype=torch.float64)

    def fresh_tokens(self, n):
        out = list(range(self.next_token, self.next_token + n))
        self.next_token += n
        return out

    def _grow(self, tokens, k, v, level, depth, fanout, max_seqs, seg_len, tail):
        n = self.rng.randint(*seg_len)
        tokens, k, v = tokens + self.fresh_tokens(n), torch.cat([k, self.rand(n)]), torch.cat([v, self.rand(n)])
        if level + 1 == depth:
            for _ in range(self.rng.randint(1, 3)):
                if len(self.truth) >= max_seqs:
                    return
                self.add(tokens, k, v, self.rng.randint(*tail))
            return
        for _ in range(self.rng.randint(1, fanout)):
            if len(self.truth) >= max_seqs:
                return
            self._grow(tokens, k, v, level + 1, depth, fanout, max_seqs, seg_len, tail)

    def add(self, tokens, k, v, n_tail):
        tokens = tokens + self.fresh_tokens(n_tail)
        k, v = torch.cat([k, self.rand(n_tail)]), torch.cat([v, self.rand(n_tail)])
        if not tokens:
            tokens, k, v = self.fresh_tokens(1), self.rand(1), self.rand(1)
        sid = self.cache.add_seq(tokens, k.to(self.device, self.dtype), v.to(self.device, self.dtype))
        self.truth[sid] = (tokens, k.to(self.dtype).double(), v.to(self.dtype).double())
        return sid

    def step(self):
        """One random tree change, as decoding sees them."""
        op = self.rng.choice(["append_all", "append_one", "fork", "remove", "add"])
        ids = sorted(self.truth)
        if op == "append_all":  # a decode step: one token for every sequence (some open a new chunk)
            k, v = self.rand(len(ids)), self.rand(len(ids))
            toks = self.fresh_tokens(len(ids))
            self.cache.append_tokens(ids, toks, k.to(self.device, self.dtype), v.to(self.device, self.dtype))
            for i, s in enumerate(ids):
                t, tk, tv = self.truth[s]
                self.truth[s] = (t + [toks[i]], torch.cat([tk, k[i : i + 1].to(self.dtype).double()]),
                                 torch.cat([tv, v[i : i + 1].to(self.dtype).double()]))
        elif op == "append_one":
            s = self.rng.choice(ids)
            for _ in range(self.rng.randint(1, 70)):
                k, v = self.rand(1), self.rand(1)
                tok = self.fresh_tokens(1)[0]
                self.cache.append_token(s, tok, k[0].to(self.device, self.dtype), v[0].to(self.device, self.dtype))
                t, tk, tv = self.truth[s]
                self.truth[s] = (t + [tok], torch.cat([tk, k.to(self.dtype).double()]),
                                 torch.cat([tv, v.to(self.dtype).double()]))
        elif op == "fork":
            s = self.rng.choice(ids)
            self.truth[self.cache.fork(s)] = self.truth[s]
        elif op == "remove" and len(ids) > 1:
            s = self.rng.choice(ids)
            self.cache.remove_seq(s)
            del self.truth[s]
        else:  # add a sequence sharing part of an existing one's prefix
            t, tk, tv = self.truth[self.rng.choice(ids)]
            cut = self.rng.randint(0, len(t))
            self.add(t[:cut], tk[:cut], tv[:cut], self.rng.randint(1, 100))
        return op

    def oracle(self, q):
        """float64 softmax attention of every sequence's query over all its keys: o (n, Hq, D), lse (n, Hq)."""
        order = self.cache.seq_ids
        hq = q.shape[1]
        grp = hq // self.kv_heads
        dev = q.device
        outs, lses = [], []
        for r, s in enumerate(order):
            _, k, v = self.truth[s]
            k, v = k.to(dev), v.to(dev)
            qq = q[r].double().view(self.kv_heads, grp, self.dim)
            scores = torch.einsum("hgd,thd->hgt", qq, k) / math.sqrt(self.dim)
            lse = torch.logsumexp(scores, dim=-1)
            outs.append(torch.einsum("hgt,thd->hgd", torch.softmax(scores, dim=-1), v).reshape(hq, self.dim))
            lses.append(lse.reshape(hq))
        return torch.stack(outs), torch.stack(lses)


def rel_err(out, ref):
    return float((out.double() - ref.double()).norm() / ref.double().norm())


# ------------------------------------------------------------------------------------------------ CPU: work lists
def emulate(q, cache, work, plan):
    """Execute the work lists with the kernels' contract in float64 (no GPU): o (n, Hq, D), lse (n, Hq)."""
    hq, d = q.shape[1], q.shape[2]
    h = cache.n_heads
    g = hq // h
    cs = cache.chunk_size
    part_o = torch.full((work.n_partial_rows, hq, d), float("nan"), dtype=torch.float64)
    part_lse = torch.full((work.n_partial_rows, hq), float("nan"), dtype=torch.float64)
    cf = work.cf_chunks.cpu().tolist()
    pc, pl = plan.private_chunk.cpu().tolist(), plan.private_len.cpu().tolist()
    kp, vp = cache.k_pool.double().cpu(), cache.v_pool.double().cpu()
    for nc in (1, 2):
        assert sorted(map(tuple, work.chunk_first_items[nc].tolist())) == sorted(
            it for it in map(tuple, work.items[nc].tolist()) if it[6] == 0)
        for it in work.items[nc].cpu().tolist():
            seq0, row0, n_rows, c0, n_c, out0, kind = it
            assert 1 <= n_rows <= 64 * nc and n_c >= 1
            ids = cf[c0 : c0 + n_c] if kind == 0 else pc[c0 : c0 + n_c]
            lens = [cs] * n_c if kind == 0 else pl[c0 : c0 + n_c]
            for head in range(h):
                k = torch.cat([kp[c, head, :n] for c, n in zip(ids, lens)])
                v = torch.cat([vp[c, head, :n] for c, n in zip(ids, lens)])
                for r in range(row0, row0 + n_rows):
                    s, qh = seq0 + r // g, head * g + r % g
                    sc = (k @ q[s, qh].double()) / math.sqrt(d)
                    assert math.isnan(part_lse[out0 + r // g, qh]), "partial row written twice"
                    part_lse[out0 + r // g, qh] = torch.logsumexp(sc, 0)
                    part_o[out0 + r // g, qh] = torch.softmax(sc, 0) @ v
    off, rows = work.merge_offset.cpu().tolist(), work.merge_rows.cpu().tolist()
    o = torch.zeros(q.shape, dtype=torch.float64)
    lse = torch.full(q.shape[:2], float("-inf"), dtype=torch.float64)
    for s in range(q.shape[0]):
        rs = rows[off[s] : off[s + 1]]
        if rs:
            ls = part_lse[rs]  # (k, Hq)
            lse[s] = torch.logsumexp(ls, 0)
            o[s] = (torch.exp(ls - lse[s])[..., None] * part_o[rs]).sum(0)
    return o, lse


@pytest.mark.parametrize("seed", range(6))
def test_work_lists_cover_every_key_once(seed):
    rng = random.Random(seed)
    kv_heads, grp = rng.choice([(1, 1), (2, 2), (1, 4), (2, 40), (1, 70)])
    world = World(seed, kv_heads, 8, torch.float64, "cpu", depth=rng.randint(1, 4), max_fanout=rng.randint(1, 8),
                  max_seqs=rng.randint(1, 24), seg_len=(1, 150), tail=(0, 100))
    for step in range(3):
        if step:
            world.step()
        q = torch.randn(len(world.cache.seq_ids), kv_heads * grp, 8, dtype=torch.float64)
        plan = world.cache.plan()
        for max_chunks, wide in ((1, 64), (2, 128), (5, 64), (None, 10**9)):
            work = tk_chunk.build_work(plan, kv_heads, kv_heads * grp, "cpu", n_sm=4, max_chunks=max_chunks,
                                       wide_rows=wide)
            o, lse = emulate(q, world.cache, work, plan)
            ref_o, ref_lse = world.oracle(q)
            assert rel_err(o, ref_o) < 1e-12
            assert torch.allclose(lse, ref_lse, atol=1e-10)


# ------------------------------------------------------------------------------------------------ GPU
gpu = gpu_mark("TK ChunkAttention kernels", tk_chunk.ops)
TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}


def run_checked(world, grp, poison=True, **kw):
    q = torch.randn(len(world.cache.seq_ids), world.kv_heads * grp, world.dim, device="cuda").to(world.dtype)
    out = tk_chunk.chunk_attention(q, world.cache, return_lse=True, poison=float("nan") if poison else None, **kw)
    o, lse = out
    torch.cuda.synchronize()
    ref_o, ref_lse = world.oracle(q)
    assert o.shape == q.shape and o.dtype == q.dtype
    assert torch.isfinite(o).all(), "an output row was not written (poison survived) or overflowed"
    err = rel_err(o, ref_o)
    assert err < TOL[world.dtype], f"rel err {err}"
    assert (lse.double() - ref_lse).abs().max() < 1e-2
    return err


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dim", [128, 64])
@pytest.mark.parametrize("seed", range(5))
def test_random_trees_with_changes(seed, dim, dtype):
    rng = random.Random(1000 + seed)
    kv_heads, grp = rng.choice([(1, 1), (2, 1), (4, 2), (2, 4), (1, 8), (1, 96)])
    world = World(seed, kv_heads, dim, dtype, "cuda", depth=1 + seed % 4, max_fanout=rng.choice([2, 8, 64]),
                  max_seqs=rng.choice([8, 40, 100]))
    errs = [run_checked(world, grp)]
    for _ in range(4):
        world.step()
        errs.append(run_checked(world, grp, max_chunks=rng.choice([None, 1, 3]), wide_rows=rng.choice([64, 128]),
                                max_blocks=rng.choice([0, 0, 1, 7, 10**6])))
    print(f"seed={seed} d={dim} {dtype} heads={kv_heads}x{grp} seqs={len(world.truth)} max_rel_err={max(errs):.2e}")


@gpu
def test_wide_shared_range_uses_two_consumers_and_many_row_tiles():
    # 150 sequences × 4 q-heads per kv-head share 3 chunks: 600 stacked rows, tiles of 128 rows.
    world = World(7, 2, 128, torch.bfloat16, "cuda", depth=1, max_fanout=1, max_seqs=0, seg_len=(1, 1))
    pre_k, pre_v = world.rand(200), world.rand(200)
    prefix = world.fresh_tokens(200)
    for _ in range(150):
        world.add(prefix, pre_k, pre_v, world.rng.randint(0, 90))
    plan, work = tk_chunk.plan_work(world.cache, 8)
    assert work.items[2].shape[0] > 0
    run_checked(world, 4)
    run_checked(world, 4, max_blocks=3)  # few persistent blocks: many units each, the ring runs across items


@gpu
@pytest.mark.parametrize("max_chunks", [1, 2, 3])
def test_merge_of_many_partials_per_sequence(max_chunks):
    # 5 sequences share 44 chunks cut into pieces of max_chunks: 44, 22 and 15 partial rows a sequence (the merge's
    # loop over more than 32 partials); 3 q-heads (GQA 3) leave a merge block's last warp without a head.
    world = World(11 + max_chunks, 1, 128, torch.bfloat16, "cuda", depth=1, max_fanout=1, max_seqs=0, seg_len=(1, 1))
    pre_k, pre_v = world.rand(44 * 64), world.rand(44 * 64)
    prefix = world.fresh_tokens(44 * 64)
    for _ in range(5):
        world.add(prefix, pre_k, pre_v, 0)
    plan, work = tk_chunk.plan_work(world.cache, 3, max_chunks=max_chunks)
    assert work.n_partial_rows == 5 * math.ceil(44 / max_chunks)
    run_checked(world, 3, max_chunks=max_chunks)


@gpu
def test_stale_nan_in_pool_is_masked():
    world = World(3, 2, 128, torch.bfloat16, "cuda", depth=2, max_fanout=4, max_seqs=12)
    used = set(world.cache.chunk_refcounts())
    plan = world.cache.plan()
    for c, n in zip(plan.host["private_chunk"].tolist(), plan.private_len.tolist()):  # garbage past each valid length
        world.cache.k_pool[c, :, n:] = float("nan")
        world.cache.v_pool[c, :, n:] = float("inf")
    free = [c for c in range(world.cache.capacity_chunks) if c not in used]
    world.cache.k_pool[free] = float("nan")
    run_checked(world, 2)


@gpu
def test_cuda_graph_replay_after_in_place_appends():
    world = World(11, 4, 128, torch.bfloat16, "cuda", depth=2, max_fanout=6, max_seqs=20, tail=(1, 40))
    ids = world.cache.seq_ids
    q = torch.randn(len(ids), 16, 128, device="cuda").to(torch.bfloat16)
    tk_chunk.chunk_attention(q, world.cache)  # warm-up: plan, work lists, kernels loaded
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = tk_chunk.chunk_attention(q, world.cache)
    for _ in range(3):
        # append one token to sequences whose last chunk still has room: the plan keeps its tensors
        room = [s for s in ids if len(world.truth[s][0]) % 64 != 0]
        k, v = world.rand(len(room)), world.rand(len(room))
        toks = world.fresh_tokens(len(room))
        world.cache.append_tokens(room, toks, k.to("cuda", torch.bfloat16), v.to("cuda", torch.bfloat16))
        for i, s in enumerate(room):
            t, tk, tv = world.truth[s]
            world.truth[s] = (t + [toks[i]], torch.cat([tk, k[i : i + 1].to(torch.bfloat16).double()]),
                              torch.cat([tv, v[i : i + 1].to(torch.bfloat16).double()]))
        world.cache.plan()  # in-place length update (outside the graph)
        q.copy_(torch.randn_like(q, dtype=torch.float32).to(torch.bfloat16))
        graph.replay()
        torch.cuda.synchronize()
        ref, _ = world.oracle(q)
        assert rel_err(out, ref) < TOL[torch.bfloat16]


@gpu
def test_bad_input_is_rejected_naming_the_argument():
    world = World(5, 2, 128, torch.bfloat16, "cuda", depth=1, max_fanout=2, max_seqs=3)
    n = len(world.cache.seq_ids)
    q = torch.randn(n, 4, 128, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="q"):
        tk_chunk.chunk_attention(q.float(), world.cache)
    with pytest.raises(TypeError, match="q"):
        tk_chunk.chunk_attention(q.half(), world.cache)
    with pytest.raises(ValueError, match="q"):
        tk_chunk.chunk_attention(q.cpu(), world.cache)
    with pytest.raises(ValueError, match="q"):
        tk_chunk.chunk_attention(q[:, :3], world.cache)
    with pytest.raises(ValueError, match="q"):
        tk_chunk.chunk_attention(q[: n - 1] if n > 1 else torch.cat([q, q]), world.cache)
    with pytest.raises(ValueError, match="head_dim"):
        tk_chunk.chunk_attention(q[..., :64], world.cache)
    small = ChunkKVCache(2, 128, 32, torch.bfloat16, "cuda", capacity_chunks=4)
    small.add_seq([1, 2, 3], torch.randn(3, 2, 128, device="cuda", dtype=torch.bfloat16),
                  torch.randn(3, 2, 128, device="cuda", dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="chunk_size"):
        tk_chunk.chunk_attention(q[:1], small)
