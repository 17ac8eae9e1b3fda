"""Time what building the ChunkAttention plan costs on the host (it is rebuilt only when the tree changes)."""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from .cache import ChunkKVCache


def build_tree(n_seqs: int, shared_tokens: int, private_tokens: int, n_heads: int = 1, d_head: int = 8,
               chunk_size: int = 64) -> ChunkKVCache:
    """n_seqs sequences sharing one prompt of shared_tokens, each with private_tokens of its own."""
    per_seq = -(-private_tokens // chunk_size) + 1
    cache = ChunkKVCache(n_heads, d_head, chunk_size, torch.float32, "cpu",
                         capacity_chunks=shared_tokens // chunk_size + n_seqs * (per_seq + 2) + 1)
    kv = torch.zeros(shared_tokens + private_tokens, n_heads, d_head)  # content is irrelevant to the plan's cost
    for s in range(n_seqs):
        tokens = list(range(shared_tokens)) + [10**6 + s] * private_tokens
        cache.add_seq(tokens, kv, kv)
    return cache


def measure(n_seqs: int, shared_tokens: int = 4096, private_tokens: int = 512, repeats: int = 5) -> dict:
    cache = build_tree(n_seqs, shared_tokens, private_tokens)
    times = []
    for _ in range(repeats):
        cache._changed()  # what every tree change does: drop the cached plan
        start = time.perf_counter()
        cache.plan()
        times.append(time.perf_counter() - start)
    # A decode step appends one token to every sequence, then asks for the plan: over chunk_size steps that is
    # chunk_size - 1 in-place length updates and one rebuild per sequence's new chunk.
    ids = cache.seq_ids
    step_kv = torch.zeros(len(ids), cache.n_heads, cache.d_head)
    steps = cache.chunk_size
    start = time.perf_counter()
    for _ in range(steps):
        cache.append_tokens(ids, [1] * len(ids), step_kv, step_kv)
        cache.plan()
    step_ms = 1e3 * (time.perf_counter() - start) / steps
    return {"n_seqs": n_seqs, "shared_tokens": shared_tokens, "private_tokens": private_tokens,
            "median_ms": 1e3 * statistics.median(times), "repeats": repeats, "step_ms": step_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tkprefix plan-cost", description=__doc__)
    parser.add_argument("--seqs", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--shared", type=int, default=4096)
    parser.add_argument("--private", type=int, default=512)
    args = parser.parse_args(argv)
    for n in args.seqs:
        r = measure(n, args.shared, args.private)
        print(f"{r['n_seqs']} seqs, shared {r['shared_tokens']}, private {r['private_tokens']}: plan rebuild "
              f"{r['median_ms']:.2f} ms (median of {r['repeats']}); decode step (append_tokens to every sequence + plan), "
              f"mean over one chunk of steps: {r['step_ms']:.2f} ms")
    return 0
