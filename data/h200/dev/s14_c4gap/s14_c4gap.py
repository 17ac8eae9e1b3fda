"""Session 14: where do tk_chunk_attn's extra ~17 us over chunk-first alone go (c4 B16 H16 P16384)? Graph replay,
L2 flushed, interleaved: chunk_first, chunk_attention, the merge alone, and chunk_attention with max_chunks 8/16/32."""
import statistics, sys
import torch
from tkprefix.cache import ChunkKVCache
from tkprefix import tk_chunk
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
print(torch.cuda.get_device_name(0), torch.__version__, file=sys.stderr)
print("B,H,variant,median_us,stats")
for B, H in ((16, 16), (16, 32), (64, 16), (128, 16)):
    P = 16384
    cache = ChunkKVCache(H, 128, 64, torch.bfloat16, dev, capacity_chunks=P // 64 + 8)
    k = torch.randn(P, H, 128, device=dev, dtype=torch.bfloat16)
    v = torch.randn(P, H, 128, device=dev, dtype=torch.bfloat16)
    toks = list(range(1, P + 1))
    for _ in range(B):
        cache.add_seq(toks, k, v)
    q = torch.randn(B, H, 128, device=dev, dtype=torch.bfloat16)
    part_o, part_lse, work = tk_chunk.chunk_first(q, cache)
    out = torch.empty_like(q)
    stream = lambda: torch.cuda.current_stream().cuda_stream  # noqa: E731
    fns = {"chunk_first": lambda: tk_chunk.chunk_first(q, cache)[0],
           "chunk_attention": lambda: tk_chunk.chunk_attention(q, cache),
           "merge_alone": lambda: tk_chunk.ops().chunk_merge(part_o, part_lse, work.merge_offset, work.merge_rows,
                                                             out, None, stream())}
    for mc in (8, 16, 32):
        fns[f"chunk_attention_mc{mc}"] = (lambda m: lambda: tk_chunk.chunk_attention(q, cache, max_chunks=m))(mc)
    runners = {}
    for name, fn in fns.items():
        g, _ = capture_graph(fn)
        runners[name] = g.replay
    med = {n: statistics.median(x) for n, x in time_interleaved(runners, 20, flusher).items()}
    for n, m in med.items():
        print(f"{B},{H},{n},{m:.1f},{work.stats if n == 'chunk_first' else ''}".replace(",{", ",\"{").replace("}", "}\"")
              if n == "chunk_first" else f"{B},{H},{n},{m:.1f},", flush=True)
    del cache, k, v
    torch.cuda.empty_cache()
