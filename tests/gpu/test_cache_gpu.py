"""ChunkKVCache on the GPU: the device name "cuda" is the device of q, and the whole lock-step decode step (lengths,
K/V writes of every layer, TK attention of every layer) replays from one CUDA graph, captured again only when the
tree changes (a sequence crosses a chunk border), against a float64 oracle that never reads the cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tkprefix
from tkprefix import tk_chunk
from tkprefix.cache import ChunkKVCache
from tk_family import gpu_mark

gpu = gpu_mark("TK ChunkAttention kernels", tk_chunk.ops)
pytestmark = pytest.mark.gpu


def oracle(q, ks, vs):
    """float64 attention of q (n, Hq, D) row i over ks[i], vs[i] (len, Hkv, D)."""
    out = []
    for qi, k, v in zip(q.double().cpu(), ks, vs):
        g = qi.shape[0] // k.shape[1]
        kk, vv = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        p = torch.softmax(torch.einsum("hd,nhd->hn", qi, kk) / math.sqrt(qi.shape[-1]), dim=-1)
        out.append(torch.einsum("hn,nhd->hd", p, vv))
    return torch.stack(out)


def rel_err(out, ref):
    return float((out.double().cpu() - ref).norm() / ref.norm())


@gpu
@pytest.mark.parametrize("backend", ["tk", "torch"])
def test_cache_on_cuda_takes_q_on_cuda_0(backend):
    cache = ChunkKVCache(2, 128, 64, torch.bfloat16, device="cuda", capacity_chunks=16)
    assert cache.device == torch.device("cuda", torch.cuda.current_device())
    gen = torch.Generator().manual_seed(0)
    ks, vs = [], []
    for tail in (3, 70):
        k, v = (torch.randn(100 + tail, 2, 128, generator=gen).to(torch.bfloat16) for _ in range(2))
        shared = ks[0][:100] if ks else None
        if shared is not None:
            k[:100], v[:100] = shared, vs[0][:100]
        cache.add_seq(list(range(100)) + [1000 * len(ks) + t for t in range(tail)], k.cuda(), v.cuda())
        ks.append(k)
        vs.append(v)
    q = torch.randn(2, 8, 128, device="cuda:0").to(torch.bfloat16)
    out = tkprefix.chunk_attention(q, cache, backend=backend)
    ref = oracle(q, [k.double() for k in ks], [v.double() for v in vs])
    assert rel_err(out, ref) < 2e-2


@gpu
def test_graph_decode_step_replays_and_is_captured_again_only_at_borders():
    layers, kv_heads, hq, dim, chunk, n_seqs, steps = 2, 2, 8, 128, 64, 24, 140
    gen = torch.Generator().manual_seed(1)
    rand = lambda *shape: torch.randn(*shape, generator=gen).to(torch.bfloat16)  # noqa: E731
    cache = ChunkKVCache(kv_heads, dim, chunk, torch.bfloat16, "cuda", capacity_chunks=512, n_layers=layers)
    prompt_k, prompt_v = rand(layers, 130, kv_heads, dim), rand(layers, 130, kv_heads, dim)
    truth = []  # per sequence, per layer: (k, v) float64 on the CPU
    for s in range(n_seqs):
        tail = 5 + s % 7  # lengths 135..141: the sequences cross chunk borders on different steps
        k = torch.cat([prompt_k, rand(layers, tail, kv_heads, dim)], dim=1)
        v = torch.cat([prompt_v, rand(layers, tail, kv_heads, dim)], dim=1)
        cache.add_seq(list(range(130)) + [10**6 + 100 * s + t for t in range(tail)], k.cuda(), v.cuda())
        truth.append([(k[i].double(), v[i].double()) for i in range(layers)])
    order = cache.seq_ids
    assert order == list(range(n_seqs))
    q = torch.zeros(n_seqs, hq, dim, dtype=torch.bfloat16, device="cuda")
    k_new = torch.zeros(layers, n_seqs, kv_heads, dim, dtype=torch.bfloat16, device="cuda")
    v_new = torch.zeros_like(k_new)
    n_dev = torch.zeros((), dtype=torch.int32, device="cuda")
    outs = [None] * layers

    def step():
        cache.step_lengths(n_dev)
        for layer in range(layers):
            cache.write_kv(k_new[layer], v_new[layer], layer)
            outs[layer] = tk_chunk.chunk_attention(q, cache, layer=layer)

    graph, captures = None, 0
    lengths = np.array([135 + s % 7 for s in range(n_seqs)])
    for t in range(steps):
        changed = cache.reserve(np.full(n_seqs, t, dtype=np.int64))
        assert changed == bool((lengths % chunk == 0).any())  # a new chunk exactly when some sequence is at a border
        lengths += 1
        n_dev.fill_(cache.appended)
        if graph is None or changed:
            tk_chunk.plan_work(cache, hq)  # the work lists are built before the capture (host -> device copies)
            if graph is None:  # warm-up: the device half is idempotent, so running the step once more is harmless
                step()
                torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            captures += 1
        kn, vn, qn = rand(layers, n_seqs, kv_heads, dim), rand(layers, n_seqs, kv_heads, dim), rand(n_seqs, hq, dim)
        k_new.copy_(kn)
        v_new.copy_(vn)
        q.copy_(qn)
        graph.replay()
        torch.cuda.synchronize()
        for s in range(n_seqs):
            truth[s] = [(torch.cat([k, kn[i, s : s + 1].double()]), torch.cat([v, vn[i, s : s + 1].double()]))
                        for i, (k, v) in enumerate(truth[s])]
        if t % 10 == 0 or changed:
            for layer in range(layers):
                ref = oracle(q, [truth[s][layer][0] for s in order], [truth[s][layer][1] for s in order])
                assert rel_err(outs[layer], ref) < 2e-2, (t, layer)
    # borders: each of the 7 tail classes crosses 64 -> 192 and 192 -> 256 ... within 140 steps: a few captures, not 140
    assert 2 <= captures <= 1 + 2 * 7
    for s in order:
        assert cache.seq_len(s) == len(truth[s][0][0])
