"""Quick device benchmark of the TK Hydragen kernels (issue 3's two targets), CUDA events, L2 flushed.

1. prefix kernel TFLOP/s: batch 1024, one shared prefix of 2048, 32 q-heads / 8 kv-heads, d 128, one query each
   (target >= 550 TFLOP/s); n_splits auto, 1 and 2 compared.
2. full decode step (prefix 4096 shared by batch 32, unique 512 each, 32/32 heads, d 128): tk hydragen (eager and
   CUDA-graph replay) vs sdpa_naive (prefix copied per sequence, torch SDPA), its parts, and the unique-bytes
   roofline from the copy bandwidth measured in the same run (targets: >= 4x sdpa_naive, <= 1.25x roofline).

Usage: PYTHONPATH=src python scripts/device/bench_hydragen.py [--out DIR] [--n 50]
Every row: median, p20, p80 over n timed calls; correctness checked first against a float64 reference.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F

from tkprefix import tk_hydragen as tkh

FLUSH = None


def flush_l2():
    FLUSH.zero_()   # 256 MB write: evicts the 50 MB L2


def quantiles(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, max(0, int(round(p * (len(xs) - 1)))))]
    return statistics.median(xs), q(0.2), q(0.8)


def time_fn(fn, n, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        flush_l2()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) * 1e3)
    return quantiles(ts)


def graphed(fn):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def copy_bandwidth():
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")   # 1 GiB
    y = torch.empty_like(x)
    med, _, _ = time_fn(lambda: y.copy_(x), 20)
    return 2 * x.numel() * 4 / (med * 1e-6)


def gemm_rate():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    med, _, _ = time_fn(lambda: a @ b, 10)
    return 2 * 8192 ** 3 / (med * 1e-6)


def rel_err(o, ref):
    return float((o.double() - ref).norm() / ref.norm())


def ref_full(q, keys, vals):
    """float64 on the GPU; keys/vals (B, T, Hkv, D)."""
    R = q.shape[2] // keys.shape[2]
    kk = keys.double().repeat_interleave(R, 2)
    vv = vals.double().repeat_interleave(R, 2)
    s = torch.einsum("bnhd,bthd->bnht", q.double(), kk) / math.sqrt(q.shape[-1])
    return torch.einsum("bnht,bthd->bnhd", torch.softmax(s, -1), vv)


def main(argv=None):
    global FLUSH
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    FLUSH = torch.empty(64 << 20, dtype=torch.float32, device="cuda")
    rows = []
    dt = torch.bfloat16
    bw = copy_bandwidth()
    gemm = gemm_rate()
    print(f"device {torch.cuda.get_device_name()}  copy {bw / 1e12:.2f} TB/s  bf16 gemm {gemm / 1e12:.0f} TFLOP/s")
    rows.append(dict(what="ceiling_copy_TBps", median_us=bw / 1e12))
    rows.append(dict(what="ceiling_gemm_TFLOPs", median_us=gemm / 1e12))

    def record(what, res, **extra):
        med, p20, p80 = res
        rows.append(dict(what=what, median_us=med, p20_us=p20, p80_us=p80, n=args.n, **extra))
        return med

    # ---- 1. prefix kernel TFLOP/s (CUDA-graph replay: the kernel alone, no Python in the timed region)
    B, Hq, Hkv, D, P = 1024, 32, 8, 128, 2048
    q = torch.randn(B, 1, Hq, D, device="cuda", dtype=dt)
    pk = torch.randn(1, P, Hkv, D, device="cuda", dtype=dt)
    pv = torch.randn(1, P, Hkv, D, device="cuda", dtype=dt)
    sub = slice(0, 64)   # correctness on a subsample of sequences (the reference is float64)
    flops = 4 * B * Hq * P * D
    out = (torch.empty_like(q), torch.empty(B, 1, Hq, device="cuda"))
    auto = tkh._plan_prefix(q, pk, None)
    for cw, splits, pp in [auto + (None,), (3, 1, False), (2, 1, False), (2, 1, True), (2, 2, True), (3, 2, False)]:
        fn = lambda: tkh.prefix_attention(q, pk, pv, n_splits=splits, consumer_warpgroups=cw, pingpong=pp, out=out)
        fn()
        err = rel_err(out[0][sub], ref_full(q[sub], pk.expand(64, -1, -1, -1), pv.expand(64, -1, -1, -1)))
        tag = f"cw{cw}{'_pingpong' if pp else ''}_splits{splits}{'_auto' if pp is None else ''}"
        med = record(f"prefix_B{B}_P{P}_H{Hq}-{Hkv}_{tag}", time_fn(graphed(fn), args.n), rel_err=err)
        rows[-1]["tflops"] = flops / (med * 1e-6) / 1e12
        print(f"prefix B{B} P{P} {Hq}/{Hkv} {tag}: {med:.1f} us  {rows[-1]['tflops']:.0f} TFLOP/s  rel_err {err:.1e}")
    med = record("prefix_gqa_eager_auto", time_fn(lambda: tkh.prefix_attention(q, pk, pv, out=out), args.n))
    print(f"  eager (Python + launch in the timed region): {med:.1f} us")
    del q, pk, pv, out

    # ---- 1b. the same kernel on TK mha_h100's benchmark shape (B16 H16 N4096 D128 non-causal; Bp = B) vs SDPA
    B, H, N = 16, 16, 4096
    q = torch.randn(B, N, H, D, device="cuda", dtype=dt)
    k = torch.randn(B, N, H, D, device="cuda", dtype=dt)
    v = torch.randn(B, N, H, D, device="cuda", dtype=dt)
    out = (torch.empty_like(q), torch.empty(B, N, H, device="cuda"))
    flops = 4 * B * H * N * N * D
    fn = lambda: tkh.prefix_attention(q, k, v, out=out)
    fn()
    qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
    o_sdpa = F.scaled_dot_product_attention(qt, kt, vt).transpose(1, 2)
    err = rel_err(out[0][:1, :256], ref_full(q[:1, :256], k[:1], v[:1]))
    fn2 = lambda: tkh.prefix_attention(q, k, v, consumer_warpgroups=2, pingpong=True, out=out)
    for name, f in (("tk_prefix", fn), ("tk_prefix_cw2_pingpong", fn2),
                    ("sdpa", lambda: F.scaled_dot_product_attention(qt, kt, vt))):
        med = record(f"mha_B{B}_H{H}_N{N}_{name}", time_fn(graphed(f), 20), rel_err=err if name == "tk_prefix" else None)
        rows[-1]["tflops"] = flops / (med * 1e-6) / 1e12
        print(f"mha B{B} H{H} N{N} D{D} {name}: {med:.1f} us  {rows[-1]['tflops']:.0f} TFLOP/s")
    print(f"  tk vs sdpa rel diff {rel_err(out[0], o_sdpa.double()):.1e}, tk vs float64 (subsample) {err:.1e}")
    del q, k, v, qt, kt, vt, out, o_sdpa

    # ---- 2. decode step
    B, Hq, Hkv, D, P, S = 32, 32, 32, 128, 4096, 512
    q = torch.randn(B, 1, Hq, D, device="cuda", dtype=dt)
    pk = torch.randn(1, P, Hkv, D, device="cuda", dtype=dt)
    pv = torch.randn(1, P, Hkv, D, device="cuda", dtype=dt)
    k = torch.randn(B, S, Hkv, D, device="cuda", dtype=dt)
    v = torch.randn(B, S, Hkv, D, device="cuda", dtype=dt)
    seq_len = torch.full((B,), S, device="cuda", dtype=torch.int32)
    out = torch.empty_like(q)
    step = lambda: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], seq_len, out=out)
    step()
    keys = torch.cat([pk.expand(B, -1, -1, -1), k], 1)
    vals = torch.cat([pv.expand(B, -1, -1, -1), v], 1)
    ref = ref_full(q, keys, vals)
    err = rel_err(out, ref)
    # sdpa_naive: every sequence's full KV, (B, H, T, D) contiguous as SDPA likes it (the copy is not timed)
    Kn = keys.transpose(1, 2).contiguous()
    Vn = vals.transpose(1, 2).contiguous()
    del keys, vals
    qn = q.transpose(1, 2)
    naive = lambda: F.scaled_dot_product_attention(qn, Kn, Vn)
    err_naive = rel_err(naive().transpose(1, 2), ref)
    unique_bytes = 2 * P * Hkv * D * 2 + 2 * B * S * Hkv * D * 2 + 2 * B * Hq * D * 2
    roof = unique_bytes / bw * 1e6
    prefix_bytes = 2 * P * Hkv * D * 2
    suffix_bytes = 2 * B * S * Hkv * D * 2
    res = {}
    res["sdpa_naive"] = time_fn(naive, args.n)
    res["sdpa_naive_graph"] = time_fn(graphed(naive), args.n)
    res["tk_hydragen_eager"] = time_fn(step, args.n)
    res["tk_hydragen_graph"] = time_fn(graphed(step), args.n)
    res["tk_hydragen_graph_merge_kernel"] = time_fn(graphed(
        lambda: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], seq_len, fuse_merge=False, out=out)), args.n)
    res["tk_hydragen_graph_2"] = time_fn(graphed(step), args.n)   # the same again: run-to-run spread
    for sp in (None, 2, 1):   # prefix on a side stream, concurrent with the decode kernel
        res[f"tk_hydragen_graph_overlap_s{sp or 'auto'}"] = time_fn(graphed(
            lambda: tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], seq_len, overlap=True, prefix_n_splits=sp,
                                                 out=out)), args.n)
    o1 = (torch.empty_like(q), torch.empty(B, 1, Hq, device="cuda"))
    for cw, sp in [tkh._plan_prefix(q, pk, None), (3, 4), (2, 8), (2, 2)]:
        res[f"part_prefix_cw{cw}_s{sp}_graph"] = time_fn(graphed(
            lambda: tkh.prefix_attention(q, pk, pv, n_splits=sp, consumer_warpgroups=cw, out=o1)), args.n)
    o2 = (torch.empty_like(q), torch.empty(B, 1, Hq, device="cuda"))
    for sp in (1, 2, 4):
        res[f"part_decode_s{sp}_graph"] = time_fn(graphed(
            lambda: tkh.decode_attention(q, k, v, seq_len, n_splits=sp, out=o2)), args.n)
    res["part_merge_graph"] = time_fn(graphed(lambda: tkh.merge_states(o1[0], o1[1], o2[0], o2[1])), args.n)
    print(f"decode step B{B} P{P} S{S} {Hq}/{Hkv}: unique bytes {unique_bytes / 1e6:.0f} MB, roofline {roof:.1f} us "
          f"(prefix {prefix_bytes / bw * 1e6:.1f} + suffix {suffix_bytes / bw * 1e6:.1f}); "
          f"rel_err tk {err:.1e} sdpa {err_naive:.1e}")
    for name, r in res.items():
        med = r[0]
        ratio = res["sdpa_naive"][0] / med
        part_roof = (prefix_bytes if "prefix" in name else suffix_bytes if "decode" in name else unique_bytes) / bw * 1e6
        print(f"  {name:28s} {med:8.1f} us [{r[1]:.1f}, {r[2]:.1f}]  x{ratio:.2f} vs sdpa_naive  "
              f"{med / roof:.2f}x step roofline  {med / part_roof:.2f}x own-bytes roofline")
        record(f"step_B{B}_P{P}_S{S}_{name}", r, roofline_us=roof, speedup_vs_sdpa_naive=ratio,
               rel_err=err_naive if "sdpa" in name else err)
    path = os.path.join(args.out, "bench_hydragen.csv")
    keys = sorted({k for r in rows for k in r})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["what"] + [k for k in keys if k != "what"])
        w.writeheader()
        w.writerows(rows)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
