"""What the harness's L2 flush costs the call timed after it (session 18; data/h200/dev/s18_flush_tax/).

The flush (tkprefix.bench.timing.L2Flusher) writes a 256 MiB buffer, so L2 ends full of the flusher's dirty lines.
Hypothesis: the timed call's first misses evict those lines, and their write-back shares DRAM with the call's own
reads: a call reading b bytes pays about min(b, L2) bytes of extra DRAM writes, ~12 µs on the H200 once b >= L2.
Every implementation pays it alike, but the roofline (unique bytes / copy bandwidth) does not hold it.

Test: time the same call after the harness's flush ("write") and after the flush plus a read sweep of 128 MiB that
evicts the dirty lines before the timer starts ("clean"), interleaved, CUDA-graph replay, median of --reps:
  * plain reads, torch.sum over b bytes (b = 4 MiB .. 512 MiB): the tax as a function of b;
  * a graph of one tiny kernel: the launch floor;
  * harness cases (c1/c3/c4 shapes), each implementation through its bench adapter.
Usage (GPU machine, after `tkprefix build`): python scripts/device/flush_tax.py [--reps 40] > flush_tax.csv
"""
from __future__ import annotations

import argparse
import csv
import sys

import torch

from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs
from tkprefix.bench.peers import get_impl
from tkprefix.bench.stats import quantiles
from tkprefix.bench.timing import L2Flusher, capture_graph

MIB = 1 << 20
SIZES_MIB = (4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512)
# config, batch, q_heads, kv_heads, prefix, suffix, impls
CASES = [
    ("c4_chunk_first", 16, 16, 16, 16384, 0, ["tk_chunk_first", "tk_chunk_attn", "tk_hydragen", "sdpa_hydragen"]),
    ("c4_chunk_first", 16, 32, 32, 16384, 0, ["tk_chunk_first", "tk_chunk_attn", "tk_hydragen", "sdpa_hydragen"]),
    ("c4_chunk_first", 128, 16, 16, 16384, 0, ["tk_chunk_first", "tk_chunk_attn", "tk_hydragen", "sdpa_hydragen"]),
    ("c3_gqa_large_batch", 512, 8, 1, 1024, 512, ["tk_hydragen", "tk_chunk_attn", "sdpa_hydragen"]),
    ("c3_gqa_large_batch", 1024, 32, 8, 2048, 0, ["tk_hydragen", "sdpa_hydragen"]),
    ("c1_system_prompt", 16, 32, 32, 0, 512, ["tk_hydragen", "sdpa_naive"]),
    ("c1_system_prompt", 128, 32, 32, 0, 512, ["tk_hydragen", "sdpa_naive"]),
    ("c1_system_prompt", 32, 32, 32, 4096, 512, ["tk_hydragen", "tk_chunk_attn", "sdpa_hydragen"]),
]


def time_modes(runners: dict, reps: int) -> dict:
    fl = L2Flusher()
    flushers = {"write": fl.flush, "clean": fl.flush_clean}   # the method's flush; the same, dirty lines evicted
    ev = {(k, m): [] for k in runners for m in flushers}
    for fn in runners.values():
        fn()
    torch.cuda.synchronize()
    for i in range(reps):
        for m, flush in (flushers.items() if i % 2 == 0 else reversed(flushers.items())):
            for k, fn in runners.items():
                flush()
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                ev[(k, m)].append((a, b))
    torch.cuda.synchronize()
    del flushers, fl
    return {key: quantiles([a.elapsed_time(b) * 1e3 for a, b in xs]) for key, xs in ev.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args()
    if args.reps < 5:
        ap.error("--reps must be >= 5")
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    out = csv.writer(sys.stdout)
    out.writerow(["what", "bytes", "mode", "median_us", "p20_us", "p80_us", "n"])
    print(f"# {props.name}, L2 {props.L2_cache_size / MIB:.0f} MiB, {props.multi_processor_count} SMs", file=sys.stderr)

    def emit(label, nbytes, res):
        for (k, m), q in res.items():
            out.writerow([label if len(res) == 2 else f"{label}:{k}", nbytes, m, f"{q.median:.2f}", f"{q.p20:.2f}",
                          f"{q.p80:.2f}", q.n])
        sys.stdout.flush()

    tiny = torch.zeros(1, device=dev)
    g, _ = capture_graph(lambda: tiny.add_(1))
    emit("graph_one_tiny_kernel", 4, time_modes({"k": g.replay}, args.reps))
    for mib in SIZES_MIB:
        x = torch.ones(mib * MIB // 2, dtype=torch.bfloat16, device=dev)
        gx, _ = capture_graph(lambda: x.sum())
        emit("torch_sum_bf16", mib * MIB, time_modes({"k": gx.replay}, args.reps))
        del x, gx
    for config, B, hq, hkv, P, S, impls in CASES:
        case = Case(config=config, batch=B, q_heads=hq, kv_heads=hkv, head_dim=128,
                    levels=((1, P),) if P else (), suffix=S)
        inp = make_inputs(case, dev, seed=0)
        runners, keep = {}, []
        for name in impls:
            p = get_impl(name).prepare(case, inp)
            gr, gout = capture_graph(p.run)
            keep.append((p, gr, gout))
            runners[name] = gr.replay
        emit(case.label(), case.unique_bytes, time_modes(runners, args.reps))
        del runners, keep, inp
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
