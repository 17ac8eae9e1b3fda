"""tk_hydragen against FlashInfer's cascade (its FA3 prefill template) on c3's compute-bound suffix-0 shapes.

Both through the benchmark's own adapters (tkprefix.bench.peers), on the benchmark's inputs.
  python3 measure.py time     per shape: graph replays after the L2 flush, interleaved (median of 40), as the harness
                              times them; then each alone back to back for ~2 s (no flush), to see the sustained rate.
  python3 measure.py loaded   the same interleaved timing with two heavy calls among the runners (a 1 GiB copy and an
                              8192^3 bf16 GEMM, ~1 ms each), as the other peers of a recorded case load the GPU.
  python3 measure.py ncu IMPL B HQ HKV P
                              one eager call of IMPL between cudaProfilerStart/Stop (run it under
                              `ncu --profile-from-start off`), after warm-up calls.
Prints CSV rows: mode,impl,B,Hq,Hkv,P,median_us,tflops
"""
import statistics
import sys
import time

import torch

from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs
from tkprefix.bench.peers import get_impl
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

SHAPES = [(1024, 32, 8, 2048), (2048, 8, 1, 4096), (512, 32, 8, 1024), (2048, 32, 8, 4096)]
IMPLS = ["tk_hydragen", "flashinfer_cascade"]


def prepared(impl, B, Hq, Hkv, P):
    case = Case("c3_gqa_large_batch", B, Hq, Hkv, 128, ((1, P),), 0)
    return get_impl(impl).prepare(case, make_inputs(case))


def tflops(B, Hq, P, us):
    return 4 * B * Hq * P * 128 / us / 1e6


def time_all(loaded=False):
    fl = L2Flusher(device="cuda")
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst, mats = torch.empty_like(src), [torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    heavy = {"copy": lambda: dst.copy_(src), "gemm": lambda: mats[0] @ mats[1]} if loaded else {}
    for B, Hq, Hkv, P in SHAPES:
        preps = {i: prepared(i, B, Hq, Hkv, P) for i in IMPLS}
        graphs = {i: capture_graph(p.run)[0] for i, p in preps.items()}
        t = time_interleaved({i: g.replay for i, g in graphs.items()} | heavy, 40, fl)
        for i in IMPLS:
            us = statistics.median(t[i])
            print(f"{'loaded' if loaded else 'flushed'},{i},{B},{Hq},{Hkv},{P},{us:.2f},{tflops(B, Hq, P, us):.0f}",
                  flush=True)
        if loaded:
            del preps, graphs
            torch.cuda.empty_cache()
            continue
        for i, g in graphs.items():   # sustained: back to back, no flush, ~2 s each
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            n = max(10, int(2e6 / statistics.median(t[i])))
            start.record()
            for _ in range(n):
                g.replay()
            end.record()
            torch.cuda.synchronize()
            us = start.elapsed_time(end) * 1e3 / n
            print(f"sustained,{i},{B},{Hq},{Hkv},{P},{us:.2f},{tflops(B, Hq, P, us):.0f}", flush=True)
            time.sleep(0.5)
        del preps, graphs
        torch.cuda.empty_cache()


def ncu_one(impl, B, Hq, Hkv, P):
    p = prepared(impl, B, Hq, Hkv, P)
    for _ in range(3):
        p.run()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    p.run()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


if __name__ == "__main__":
    if sys.argv[1] in ("time", "loaded"):
        print("mode,impl,B,Hq,Hkv,P,median_us,tflops", flush=True)
        time_all(loaded=sys.argv[1] == "loaded")
    else:
        ncu_one(sys.argv[2], *map(int, sys.argv[3:7]))
