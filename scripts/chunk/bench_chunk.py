"""Benchmarks of the TK ChunkAttention kernels (issue 4), method of BENCHMARKS.md.

* config 4 -- the chunk-first phase alone: {16, 32} heads, chunk 64, {16, 32, 64, 128} sequences sharing 256 chunks
  (16384 tokens; each sequence also holds 1 private token, which the phase does not touch). TFLOP/s and bytes/s.
* decode steps (the whole two-phase algorithm + merge) against `sdpa_naive` (prefix copied per sequence, one SDPA
  call) and `sdpa_hydragen` (the Hydragen decomposition in plain PyTorch), interleaved on the same inputs:
  config 1 (32 seqs sharing 4K, 512 private; 128 seqs sharing 4K, 64 private), config 5 (2K system prompt, 8
  documents of 1K, 4 samples each, suffix 256), and a GQA row (32/8 heads, 1024 seqs sharing 2K, 64 private).
Every timed call follows a 256 MiB L2 flush and sits alone between two CUDA events (median, p20, p80, n). The two
ceilings (copy bandwidth, bf16 GEMM) are measured in the same run. Correctness against float64 is checked on the same
inputs first. Output: CSV + provenance JSON under --out.

Run (H100): PYTHONPATH=src python scripts/chunk/bench_chunk.py --out DIR
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import time

import torch

from tkprefix import tk_chunk
from tkprefix.bench import stats
from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import full_kv, make_inputs, pick_rows, reference_rows, rel_err
from tkprefix.bench.peers import SdpaHydragen, SdpaNaive, _tokens
from tkprefix.bench.timing import L2Flusher, capture_graph, measure_ceilings, time_interleaved
from tkprefix.cache import ChunkKVCache

# the default path and the variants that show what each design choice is worth (same inputs, interleaved)
TK_VARIANTS = {
    "tk_chunk_attn": {},
    "tk_chunk_attn[nc1_only]": {"wide_rows": 10**9},  # chunk-first rows in 64-row items only (K/V re-read via L2)
    "tk_chunk_attn[non_persistent]": {"max_blocks": 10**9},  # one block per (item, kv-head)
    "tk_chunk_attn[mc=8]": {"max_chunks": 8},
    "tk_chunk_attn[mc=16]": {"max_chunks": 16},
    "tk_chunk_attn[mc=32]": {"max_chunks": 32},
}

CF_VARIANTS = {
    "tk_chunk_first": {},
    "tk_chunk_first[per_chunk]": {"max_chunks": 1},  # one partial per (shared chunk, row): the paper's layout
    "tk_chunk_first[nc1_only]": {"wide_rows": 10**9},
}

COLUMNS = ["config", "impl", "status", "batch", "q_heads", "kv_heads", "head_dim", "prefix", "suffix", "dtype",
           "graph", "median_us", "p20_us", "p80_us", "n", "rel_err", "unique_bytes", "flops", "roofline_us",
           "pct_roofline", "tflops", "tb_per_s", "max_chunks", "blocks", "plan_us", "work_us", "levels"]


def build_cache(case: Case, inp) -> tuple[ChunkKVCache, torch.Tensor, torch.Tensor]:
    """The case's sequences in a ChunkKVCache; q in cache.seq_ids order and the permutation back to batch order."""
    c = case.chunk_size
    n_chunks = sum(r * -(-n // c) for r, n in case.levels) + case.batch * (-(-case.total_keys // c) + 2)
    cache = ChunkKVCache(case.kv_heads, case.head_dim, c, inp.q.dtype, inp.q.device, capacity_chunks=n_chunks)
    b_of = {}
    for b in range(case.batch):
        k, v = full_kv(inp, b)
        b_of[cache.add_seq(_tokens(case, b), k, v)] = b
    perm = torch.tensor([b_of[s] for s in cache.seq_ids], device=inp.q.device)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm), device=perm.device)
    q = inp.q.reshape(case.batch, case.q_heads, case.head_dim)[perm].contiguous()
    return cache, q, inv


def host_costs(cache: ChunkKVCache, hq: int, reps: int = 5) -> tuple[float, float]:
    """Median µs of rebuilding the plan (cache.plan after a tree change) and of deriving the kernels' work lists."""
    plan_t, work_t = [], []
    for _ in range(reps):
        cache._changed()
        t0 = time.perf_counter()
        plan = cache.plan()
        t1 = time.perf_counter()
        tk_chunk.build_work(plan, cache.n_heads, hq, cache.k_pool.device)
        t2 = time.perf_counter()
        plan_t.append((t1 - t0) * 1e6)
        work_t.append((t2 - t1) * 1e6)
    return sorted(plan_t)[reps // 2], sorted(work_t)[reps // 2]


def row(case: Case, impl: str, graph: bool, q: stats.Quantiles | None, **kw) -> dict:
    r = {k: "" for k in COLUMNS}
    r.update(config=case.config, impl=impl, status="ok", batch=case.batch, q_heads=case.q_heads,
             kv_heads=case.kv_heads, head_dim=case.head_dim, prefix=case.prefix, suffix=case.suffix,
             dtype=case.dtype, graph=graph, levels=json.dumps(case.levels))
    if q is not None:
        r.update(median_us=round(q.median, 2), p20_us=round(q.p20, 2), p80_us=round(q.p80, 2), n=q.n)
    r.update(kw)
    return r


def bench_chunk_first(args, ceil, flusher, rows):
    for heads in (32, 16):
        for batch in (16, 32, 64, 128):
            case = Case(config="c4_chunk_first", batch=batch, q_heads=heads, kv_heads=heads, head_dim=128,
                        levels=((1, 256 * 64),), suffix=1)
            inp = make_inputs(case, seed=batch)
            cache, q, _ = build_cache(case, inp)
            plan_us, work_us = host_costs(cache, heads)
            runners, meta = {}, {}
            for name, kw in CF_VARIANTS.items():
                part_o, part_lse, work = tk_chunk.chunk_first(q, cache, **kw)
                g, (po, pl) = capture_graph(lambda kw=kw: tk_chunk.chunk_first(q, cache, **kw)[:2])
                runners[name] = g.replay
                meta[name] = (work, po, pl)
            samples = time_interleaved(runners, args.reps, flusher)
            for name in CF_VARIANTS:
                work, po, pl = meta[name]
                err = check_first_piece(q, cache, work, po, pl)
                qs = stats.quantiles(samples[name])
                flops = 4 * batch * heads * 256 * 64 * 128
                kv_bytes = 256 * heads * 64 * 128 * 2 * 2
                ubytes = kv_bytes + q.numel() * 2 + batch * heads * (128 + 1) * 4  # K/V once, q, one fp32 row out
                roof = stats.roofline_us(ubytes, flops, ceil["copy_bw_bytes_per_s"], ceil["gemm_flops_per_s"])
                rows.append(row(case, name, True, qs,
                                rel_err=f"{err:.2e}", unique_bytes=ubytes, flops=flops, roofline_us=round(roof, 2),
                                pct_roofline=round(100 * roof / qs.median, 1),
                                tflops=round(flops / qs.median / 1e6, 1), tb_per_s=round(ubytes / qs.median / 1e6, 3),
                                max_chunks=work.max_chunks, blocks=work.stats["units"], plan_us=round(plan_us),
                                work_us=round(work_us)))
                print_row(rows[-1])
            cache = inp = runners = meta = None  # free the GPU memory before the next case
            torch.cuda.empty_cache()


def check_first_piece(q, cache, work, po, pl) -> float:
    """rel err of one chunk-first item's partial rows against float64 attention over the item's chunks."""
    for nc in (1, 2):
        if len(work.chunk_first_items[nc]):
            seq0, row0, n_rows, c0, n_c, out0, _ = work.chunk_first_items[nc][0].tolist()
            break
    g = q.shape[1] // cache.n_heads
    ids = work.cf_chunks[c0 : c0 + n_c].long()
    k = cache.k_pool[ids].double()  # (n_c, H, 64, D)
    v = cache.v_pool[ids].double()
    outs, refs = [], []
    for r in range(row0, row0 + n_rows):
        s, qh = seq0 + r // g, r % g  # kv-head 0
        kk, vv = k[:, 0].reshape(-1, k.shape[-1]), v[:, 0].reshape(-1, v.shape[-1])
        p = torch.softmax(kk @ q[s, qh].double() / q.shape[2] ** 0.5, 0)
        refs.append(p @ vv)
        outs.append(po[out0 + r // g, qh].double())
    return rel_err(torch.stack(outs), torch.stack(refs))


def bench_decode(args, ceil, flusher, rows):
    cases = [
        Case(config="c1_system_prompt", batch=32, q_heads=32, kv_heads=32, head_dim=128, levels=((1, 4096),), suffix=512),
        Case(config="c1_system_prompt", batch=128, q_heads=32, kv_heads=32, head_dim=128, levels=((1, 4096),), suffix=64),
        Case(config="c5_two_level", batch=32, q_heads=32, kv_heads=32, head_dim=128, levels=((1, 2048), (8, 1024)),
             suffix=256),
        Case(config="c3_gqa", batch=1024, q_heads=32, kv_heads=8, head_dim=128, levels=((1, 2048),), suffix=64),
    ]
    if args.quick:
        cases = cases[:1]
    for case in cases:
        inp = make_inputs(case, seed=case.batch + case.suffix)
        cache, q, inv = build_cache(case, inp)
        plan_us, work_us = host_costs(cache, case.q_heads)
        _, work = tk_chunk.plan_work(cache, case.q_heads)
        check = pick_rows(case.batch, 6)
        ref = reference_rows(case, inp, check)
        ubytes = stats.attention_unique_bytes(batch=case.batch, q_heads=case.q_heads, kv_heads=case.kv_heads,
                                              head_dim=case.head_dim, levels=case.levels, suffix=case.suffix)
        flops = stats.attention_flops(batch=case.batch, q_heads=case.q_heads, head_dim=case.head_dim,
                                      keys_per_query=case.total_keys)
        roof = stats.roofline_us(ubytes, flops, ceil["copy_bw_bytes_per_s"], ceil["gemm_flops_per_s"])
        runners, errs, kinds, works = {}, {}, {}, {}
        for name, kw in TK_VARIANTS.items():
            if args.quick and name != "tk_chunk_attn":
                continue
            o = tk_chunk.chunk_attention(q, cache, poison=float("nan"), **kw)
            errs[name] = rel_err(o[inv][check], ref)
            works[name] = tk_chunk.plan_work(cache, case.q_heads, kw.get("max_chunks"), kw.get("wide_rows", 64))[1]
            g, _ = capture_graph(lambda kw=kw: tk_chunk.chunk_attention(q, cache, **kw))
            runners[(name, True)] = g.replay
            if name == "tk_chunk_attn":
                runners[(name, False)] = lambda: tk_chunk.chunk_attention(q, cache)
        for peer in (SdpaNaive(), SdpaHydragen()):
            try:
                prep = peer.prepare(case, inp)
                out = prep.canonical(prep.run())
                errs[peer.name] = rel_err(out[check], ref)
                runners[(peer.name, False)] = prep.run
            except torch.OutOfMemoryError as e:
                kinds[peer.name] = f"oom: {str(e)[:80]}"
            except Exception as e:  # noqa: BLE001 -- a peer that fails is a row, not a crash
                kinds[peer.name] = f"unavailable: {type(e).__name__}: {str(e)[:120]}"
        bad = {k for k in runners if errs.get(k[0], 1.0) > 1e-2}
        for k in bad:
            kinds[k[0]] = f"wrong: rel_err {errs.get(k[0])}"
            del runners[k]
        samples = time_interleaved(runners, args.reps, flusher)
        for (name, graph), s in samples.items():
            qs = stats.quantiles(s)
            rows.append(row(case, name, graph, qs, rel_err=f"{errs[name]:.2e}", unique_bytes=ubytes, flops=flops,
                            roofline_us=round(roof, 2), pct_roofline=round(100 * roof / qs.median, 1),
                            tflops=round(flops / qs.median / 1e6, 2), tb_per_s=round(ubytes / qs.median / 1e6, 3),
                            max_chunks=works[name].max_chunks if name in works else "",
                            blocks=works[name].stats["units"] if name in works else "",
                            plan_us=round(plan_us) if name.startswith("tk") else "",
                            work_us=round(work_us) if name.startswith("tk") else ""))
            print_row(rows[-1])
        for name, status in kinds.items():
            rows.append(row(case, name, False, None, status=status))
            print_row(rows[-1])
        cache = inp = runners = None  # free the GPU memory before the next case
        torch.cuda.empty_cache()


def print_row(r):
    print(f"{r['config']:>17} {r['impl']:>24} g={str(r['graph'])[0]} B={r['batch']:>4} H={r['q_heads']}/{r['kv_heads']} "
          f"P={r['prefix']:>5} S={r['suffix']:>4} {r['status']:>4} med={r['median_us']!s:>8} "
          f"[{r['p20_us']}, {r['p80_us']}] n={r['n']} err={r['rel_err']} roof={r['roofline_us']} "
          f"%roof={r['pct_roofline']} TF={r['tflops']} TB/s={r['tb_per_s']} mc={r['max_chunks']} "
          f"blocks={r['blocks']} plan={r['plan_us']}us work={r['work_us']}us", flush=True)


def provenance(ceil) -> dict:
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception as e:  # noqa: BLE001
            return f"unavailable: {e}"
    return {
        "gpu": torch.cuda.get_device_name(), "driver": sh("nvidia-smi --query-gpu=driver_version --format=csv,noheader"),
        "clocks": sh("nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader"),
        "cuda_runtime": torch.version.cuda, "torch": torch.__version__, "nvcc": sh("nvcc --version | tail -1"),
        "tk_commit": "0b55588d2769dde0c7a9a606ffc015b0ca7a9551", "git_commit": os.environ.get("GIT_COMMIT", "unknown"),
        "python": platform.python_version(), "kernels": tk_chunk.ops().__class__.__name__,
        "ceilings": ceil, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["c4", "decode", "all"], default="all")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ceil = measure_ceilings()
    print(f"ceilings: copy {ceil['copy_bw_bytes_per_s'] / 1e12:.3f} TB/s, gemm {ceil['gemm_flops_per_s'] / 1e12:.1f} "
          f"TFLOP/s", flush=True)
    flusher = L2Flusher()
    rows = []
    try:
        if args.only in ("decode", "all"):
            bench_decode(args, ceil, flusher, rows)
        if args.only in ("c4", "all"):
            bench_chunk_first(args, ceil, flusher, rows)
    finally:
        with open(os.path.join(args.out, "bench_chunk.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
        with open(os.path.join(args.out, "provenance_chunk.json"), "w") as f:
            json.dump(provenance(ceil), f, indent=1)


if __name__ == "__main__":
    main()
