"""Session 11: why the harness's c3 B1024 32/8 P2048 S0 tk_hydragen (82.0 us recorded) is slower than the prefix
kernel alone (73.2 us): the harness's own call (make_inputs + TkHydragen adapter) against prefix_attention alone and
hydragen_attention_nopad on contiguous fresh tensors, interleaved, cool GPU and then after ~20 s of bf16 GEMM load."""
import statistics, subprocess, sys, time
import torch
from tkprefix import tk_hydragen as tkh
from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs
from tkprefix.bench.peers import REGISTRY
from tkprefix.bench.timing import L2Flusher, capture_graph, time_interleaved

def clocks():
    return subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,temperature.gpu", "--format=csv,noheader"],
                          capture_output=True, text=True).stdout.strip()
dev = torch.device("cuda")
flusher = L2Flusher(device=dev)
case = Case(config="c3_gqa_large_batch", batch=1024, q_heads=32, kv_heads=8, head_dim=128, levels=((1, 2048),),
            suffix=0)
inp = make_inputs(case, dev)
prep = REGISTRY["tk_hydragen"].prepare(case, inp)
q = torch.randn(1024, 1, 32, 128, device=dev, dtype=torch.bfloat16)
k, v = (torch.randn(1, 2048, 8, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
runners = {}
for name, fn in (("harness_adapter", prep.run),
                 ("prefix_only_harness_inputs", lambda: tkh.prefix_attention(inp.q, inp.shared_ks[0], inp.shared_vs[0])),
                 ("prefix_only_fresh", lambda: tkh.prefix_attention(q, k, v)),
                 ("nopad_fresh", lambda: tkh.hydragen_attention_nopad(q, q.new_empty(1024, 0, 8, 128),
                                                                       q.new_empty(1024, 0, 8, 128), [k], [v]))):
    g, _ = capture_graph(fn)
    runners[name] = g.replay
print(torch.cuda.get_device_name(0), torch.__version__, file=sys.stderr)
print("phase,variant,median_us,p20_us,p80_us,clocks_before,clocks_after")
a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
for phase in ("cool", "after_gemm_load", "cool_again"):
    if phase == "after_gemm_load":
        t = time.time()
        while time.time() - t < 20:
            for _ in range(20):
                a @ a
            torch.cuda.synchronize()
    if phase == "cool_again":
        time.sleep(15)
    c0 = clocks()
    res = time_interleaved(runners, 40, flusher)
    torch.cuda.synchronize()
    c1 = clocks()
    for name, xs in res.items():
        xs = sorted(xs)
        print(f"{phase},{name},{statistics.median(xs):.1f},{xs[len(xs) // 5]:.1f},{xs[4 * len(xs) // 5]:.1f},"
              f"\"{c0}\",\"{c1}\"", flush=True)
