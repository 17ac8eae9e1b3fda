"""A small ChunkAttention step for compute-sanitizer (memcheck, racecheck): both kernels' variants are exercised.

Case A: 3 kv-heads x G=2, a 2-level tree with partial last chunks (1-consumer items, masked tails, V zeroing).
Case B: 70 sequences x G=2 sharing 2 chunks: 140 stacked rows -> 2-consumer items, one with a half-empty tile.
Run: compute-sanitizer --tool memcheck python scripts/chunk/sanitize_case.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "gpu"))
from test_tk_chunk import World, rel_err  # noqa: E402

from tkprefix import tk_chunk  # noqa: E402


def main():
    torch.manual_seed(0)
    worst = 0.0
    for dim, dtype in ((128, torch.bfloat16), (64, torch.float16)):
        world = World(1, 3, dim, dtype, "cuda", depth=2, max_fanout=3, max_seqs=6, seg_len=(30, 150), tail=(1, 90))
        q = torch.randn(len(world.cache.seq_ids), 6, dim, device="cuda").to(dtype)
        o = tk_chunk.chunk_attention(q, world.cache, poison=float("nan"))
        torch.cuda.synchronize()
        worst = max(worst, rel_err(o, world.oracle(q)[0]))
    world = World(2, 1, 128, torch.bfloat16, "cuda", depth=1, max_fanout=1, max_seqs=0, seg_len=(1, 1))
    pk, pv = world.rand(150), world.rand(150)
    prefix = world.fresh_tokens(150)
    for i in range(70):
        world.add(prefix, pk, pv, 1 + i % 50)
    plan, work = tk_chunk.plan_work(world.cache, 2)
    assert work.items[2].shape[0] > 0, "case B must use 2-consumer items"
    q = torch.randn(70, 2, 128, device="cuda").to(torch.bfloat16)
    o = tk_chunk.chunk_attention(q, world.cache, poison=float("nan"))
    torch.cuda.synchronize()
    worst = max(worst, rel_err(o, world.oracle(q)[0]))
    print(f"sanitize_case: worst rel_err {worst:.2e} ({'ok' if worst < 2e-2 else 'WRONG'})")


if __name__ == "__main__":
    main()
