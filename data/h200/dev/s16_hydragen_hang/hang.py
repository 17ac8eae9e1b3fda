"""Session 16: stress c7 case 2 (B512 H32/8 P[64x2048] S256), which hung once in interleaved timing on an H200 at
7542340 (group of sdpa_naive, sdpa_hydragen, cudnn_hydragen, flashinfer_cascade, tk_hydragen, tk_chunk_attn).
Per implementation alone, then all together; faulthandler dumps the stack if a stage takes > 25 s."""
import faulthandler, json, sys, time
from pathlib import Path
import torch
from tkprefix.bench import cli_bench
from tkprefix.bench.cases import load_sweeps
from tkprefix.bench.runner import run_case
from tkprefix.bench.timing import L2Flusher, measure_ceilings

wall = float(sys.argv[1])
groups = {"tk": ["tk_hydragen", "tk_chunk_attn"], "torch": ["sdpa_naive", "sdpa_hydragen", "cudnn_hydragen"],
          "tkh": ["tk_hydragen", "sdpa_hydragen", "cudnn_hydragen"], "tkc": ["tk_chunk_attn", "sdpa_hydragen", "cudnn_hydragen"]}
which = sys.argv[2]
s = load_sweeps(cli_bench.DEFAULT_SWEEPS, ["c7_forest"])[0]
case = s.cases[2]
print(case.label(), flush=True)
impls = ["tk_hydragen", "tk_chunk_attn", "sdpa_naive", "sdpa_hydragen", "cudnn_hydragen"]
flusher = L2Flusher()
ceil = measure_ceilings()
t0 = time.time()
it = 0
def prog(impl, stage):
    faulthandler.dump_traceback_later(25, exit=True)
    print(f"{time.time()-t0:7.1f} it{it} {impl} {stage}", flush=True)
while time.time() - t0 < wall:
    for group in [groups[which]]:
        rows = run_case(case, group, [False, True], flusher, ceil, seed=int(time.time()) % 10000 + it, reps=400, min_reps=400,
                        time_budget_s=100.0, log=print, progress=prog)
        for r in rows:
            print(f"  {r['impl']} g{r['graph']} {r['status'][:60]} {r.get('median_us')} err {r.get('rel_err')}",
                  flush=True)
        it += 1
faulthandler.cancel_dump_traceback_later()
print("done", it, flush=True)
