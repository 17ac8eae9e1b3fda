"""The host cost of upstream ChunkAttention's C++ prefix-tree cache (microsoft/chunk-attention, built by
scripts/peers/build_chunk_attn_upstream.sh), measured like `tkprefix plan-cost` measures ours (issue 10):

* building a tree of n sequences sharing one prompt (``add_seq`` each; 4K shared, 512 private tokens);
* a decode step: ``append_token`` for every sequence (one batched call: it opens new chunks for the sequences that
  cross a chunk border, then appends K/V on the device) followed by ``refresh_kernel_context`` (its plan; ``forward``
  calls it first), mean over one chunk of steps, border steps included;
* a fork (``duplicate(seq, 1)``) and a remove (``remove_seq``), each the mean over several sequences.

Upstream is built with CUDA only (no MKL), so this runs on the GPU machine; the K/V live on the device and the step
time includes the launch of its append kernel (the device is synchronized once after the steps). Upstream's
``duplicate`` adds the copy to the tree but not to its list of sequence tails, so the forks are timed last, on a tree
that is then discarded.
"""
from __future__ import annotations

import argparse
import time

import torch

__all__ = ["measure_upstream", "main"]


def _attention(n_seqs: int, shared: int, private: int, n_heads: int, d_head: int, chunk: int):
    from .bench.peers import import_chunk_attn

    chunks = shared // chunk + n_seqs * (-(-private // chunk) + 3)
    mb = int(chunks * chunk * n_heads * d_head * 2 * 2 / 2**20) + 64
    return import_chunk_attn().Attention(n_heads=n_heads, d_head=d_head, chunk_size=chunk, memory_mb=mb,
                                         dtype=torch.float16, device=torch.device("cuda"))


def _build(n_seqs: int, shared: int, private: int, n_heads: int, d_head: int, chunk: int):
    attn = _attention(n_seqs, shared, private, n_heads, d_head, chunk)
    kv = torch.zeros(shared + private, n_heads, d_head, dtype=torch.float16, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for s in range(n_seqs):
        attn.add_seq(tokens=list(range(shared)) + [10**6 + s] * private, k=kv, v=kv)
    attn.refresh_kernel_context(True)
    torch.cuda.synchronize()
    return attn, time.perf_counter() - start


def measure_upstream(n_seqs: int, shared: int = 4096, private: int = 512, n_heads: int = 1, d_head: int = 128,
                     chunk: int = 64, edits: int = 16) -> dict:
    """Host-cost figures of upstream's cache for one tree size (keys as in the module docstring; times in ms)."""
    if n_seqs <= 0 or shared < 0 or private <= 0 or edits <= 0:
        raise ValueError(f"n_seqs/shared/private/edits: need n_seqs, private, edits > 0 and shared >= 0, got "
                         f"{(n_seqs, shared, private, edits)}")
    if not torch.cuda.is_available():
        raise RuntimeError("upstream ChunkAttention is built for CUDA only: run this on the GPU machine")
    attn, build_s = _build(n_seqs, shared, private, n_heads, d_head, chunk)
    step_kv = torch.zeros(n_seqs, n_heads, d_head, dtype=torch.float16, device="cuda")
    toks = [1] * n_seqs
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(chunk):
        attn.append_token(tokens=toks, k=step_kv, v=step_kv, fused=True)
        attn.refresh_kernel_context()
    torch.cuda.synchronize()
    step_ms = 1e3 * (time.perf_counter() - start) / chunk
    k = min(edits, n_seqs)
    start = time.perf_counter()
    for i in range(k):
        attn.remove_seq(n_seqs - 1 - i)
    remove_ms = 1e3 * (time.perf_counter() - start) / k
    start = time.perf_counter()  # last: upstream's duplicate leaves its tails list behind the tree
    for i in range(k):
        attn.duplicate(i * ((n_seqs - k) // k), 1)
    fork_ms = 1e3 * (time.perf_counter() - start) / k
    return {"n_seqs": n_seqs, "shared_tokens": shared, "private_tokens": private, "build_s": build_s,
            "step_ms": step_ms, "fork_ms": fork_ms, "remove_ms": remove_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tkprefix plan-cost-upstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqs", type=int, nargs="+", default=[128, 4096])
    parser.add_argument("--shared", type=int, default=4096)
    parser.add_argument("--private", type=int, default=512)
    args = parser.parse_args(argv)
    print("upstream ChunkAttention (C++ cache), host cost")
    print("| seqs | shared | private | build tree (s) | decode step (us) | fork (us) | remove (us) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.seqs:
        try:
            r = measure_upstream(n, args.shared, args.private)
        except Exception as e:  # noqa: BLE001 - a failure of upstream is a row, never a crash
            print(f"| {n} | {args.shared} | {args.private} | failed: {type(e).__name__}: {e} | | | |")
            continue
        print(f"| {n} | {args.shared} | {args.private} | {r['build_s']:.3f} | {1e3 * r['step_ms']:.1f} | "
              f"{1e3 * r['fork_ms']:.1f} | {1e3 * r['remove_ms']:.1f} |")
    return 0
