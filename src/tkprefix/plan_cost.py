"""Host cost of the ChunkAttention cache (`tkprefix plan-cost`): a benchmark, not a test; prints the machine.

For each number of sequences, a tree of one shared prompt (`--shared` tokens) with `--private` tokens per sequence:

* build: adding every sequence in one `add_seqs` call (the batched add), median of 3 builds; tokens as arrays, as
  a server holds them; K/V of 1 head of 8, so pool writes are small and the figure is mostly the tree's own cost;
* rebuild: the plan from scratch (what a tree edit costs at the next step), median;
* step: one lock-step decode step (a token for every sequence) averaged over chunk_size steps, so that the step where
  every sequence crosses a chunk border (and the plan is updated) is included. `step host` is the host half alone
  (`reserve` + `plan()`: what remains per step on the host when the device half runs in a CUDA graph); the step
  target applies to it. `step + device half on CPU` is `append_tokens(None, ...)` + `plan()` on a cache that lives
  on the CPU: the host half, the argument checks, and the device half (`step_lengths`: every row's length and
  write slot; `write_kv`: one index_copy_ per pool) executed by torch on this CPU in place of the GPU. It is
  neither the graph step's host cost (there the device half is inside the graph) nor the eager GPU step's (there
  it is kernel launches, not CPU memory work), so no target applies to it;
* work: building the TK kernels' work lists from a new plan (tk_chunk.build_work, host numpy), done once per plan
  change on the GPU path, so amortized over chunk_size steps too (`work/64`);
* fork, remove: median of single edits (the plan is rebuilt at the next step, see rebuild).

With ``--trees SWEEP.yaml`` (the c8 sweep) it also prints the host cost of tree attention's plan (issue 13) for each
tree of that sweep and a 4096-leaf tree: `PagedTree` (its checks and vectorized structure) plus `plan_tree`, once per
tree change, median; with the plan's size and the sharing it reaches (path tokens / KV tokens the work list reads).

Targets (issue 10): step host <= 20 us at 128 sequences and <= 60 us at 4096; build of 4096 <= 0.5 s; fork, remove
<= 50 us. A tiny untimed run goes first, so that first-call costs (torch's lazy set-up) land in no row.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from .cache import ChunkKVCache

TARGETS = {"step_us": {128: 20.0, 4096: 60.0}, "build_s": {4096: 0.5}, "edit_us": 50.0}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    return (f"{model}; {os.cpu_count()} logical cores ({usable} usable){load}; Python {platform.python_version()}, "
            f"numpy {np.__version__}, torch {torch.__version__}")


def build_tree(n_seqs: int, shared_tokens: int, private_tokens: int, n_heads: int = 1, d_head: int = 8,
               chunk_size: int = 64, extra_chunks: int = 0) -> tuple[ChunkKVCache, float]:
    """n_seqs sequences sharing one prompt of shared_tokens, each with private_tokens of its own; (cache, seconds)."""
    per_seq = -(-private_tokens // chunk_size) + 2
    cache = ChunkKVCache(n_heads, d_head, chunk_size, torch.float32, "cpu",
                         capacity_chunks=shared_tokens // chunk_size + n_seqs * per_seq + extra_chunks + 1)
    kv = torch.zeros(shared_tokens + private_tokens, n_heads, d_head)  # content is irrelevant to the cost
    prompt = np.arange(shared_tokens, dtype=np.int64)
    tokens = [np.concatenate((prompt, np.full(private_tokens, 10**6 + s, np.int64))) for s in range(n_seqs)]
    start = time.perf_counter()
    cache.add_seqs(tokens, [kv] * n_seqs, [kv] * n_seqs)  # one batched call (a server admitting a batch)
    return cache, time.perf_counter() - start


def _median_us(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def measure(n_seqs: int, shared_tokens: int = 4096, private_tokens: int = 512, repeats: int = 5,
            edits: int = 50) -> dict:
    builds = []
    for _ in range(3):  # this machine is shared and noisy: the median of 3 builds, each a fresh cache
        cache, seconds = build_tree(n_seqs, shared_tokens, private_tokens, extra_chunks=2 * edits)
        builds.append(seconds)
    build_s = statistics.median(builds)
    fast = hasattr(cache, "reserve")  # main before issue 10 had no lock-step path

    def rebuild():
        cache._changed()  # what every tree change does: drop the plan
        cache.plan()

    rebuild_ms = _median_us(rebuild, repeats) / 1e3
    ids = cache.seq_ids
    step_kv = torch.zeros(len(ids), cache.n_heads, cache.d_head)
    steps = cache.chunk_size
    out = {"n_seqs": n_seqs, "build_s": build_s, "rebuild_ms": rebuild_ms, "host_us": None, "work_ms": None}
    rng = np.random.default_rng(0)
    if fast:
        tokens = rng.integers(0, 1000, (steps, len(ids)))
        start = time.perf_counter()
        for t in range(steps):
            cache.reserve(tokens[t])
            cache.plan()
        out["host_us"] = 1e6 * (time.perf_counter() - start) / steps
        start = time.perf_counter()
        for t in range(steps):
            cache.append_tokens(None, tokens[t], step_kv, step_kv)
            cache.plan()
        out["eager_us"] = 1e6 * (time.perf_counter() - start) / steps
        from .tk_chunk import build_work

        out["work_ms"] = _median_us(lambda: build_work(cache.plan(), 8, 32, "cpu", n_sm=132), repeats) / 1e3
    else:
        tokens = rng.integers(0, 1000, (steps, len(ids))).tolist()
        start = time.perf_counter()
        for t in range(steps):
            cache.append_tokens(ids, tokens[t], step_kv, step_kv)
            cache.plan()
        out["eager_us"] = 1e6 * (time.perf_counter() - start) / steps
    picks = rng.choice(ids, size=min(edits, len(ids)), replace=False).tolist()
    forks, removes, new = [], [], []
    for s in picks:
        start = time.perf_counter()
        new.append(cache.fork(s))
        forks.append(time.perf_counter() - start)
    for s in new:
        start = time.perf_counter()
        cache.remove_seq(s)
        removes.append(time.perf_counter() - start)
    out["fork_us"] = 1e6 * statistics.median(forks)
    out["remove_us"] = 1e6 * statistics.median(removes)
    return out


def measure_tree(tree, q_heads: int = 32, kv_heads: int = 32, repeats: int = 5) -> dict:
    """Host cost of one tree change for tree attention: PagedTree over a page-aligned layout (the pool holds no
    values: the plan never looks at them) and plan_tree, median over repeats."""
    from .tree_plan import PagedTree, plan_tree

    lengths = np.asarray(tree.lengths, np.int64)
    pages = -(-lengths // 64)
    offsets = np.concatenate(([0], np.cumsum(pages)))
    pool = torch.empty(int(offsets[-1]), kv_heads, 64, 1)
    layout = dict(parents=np.asarray(tree.parents), lengths=lengths, page_table=np.arange(offsets[-1]),
                  node_page_offset=offsets, first_slot=np.zeros(len(lengths), np.int64), k_pool=pool, v_pool=pool)
    plan = plan_tree(PagedTree(**layout), q_heads)
    plan_ms = _median_us(lambda: plan_tree(PagedTree(**layout), q_heads), repeats) / 1e3
    return {"plan_ms": plan_ms, "items": plan.n_items, "partials": plan.n_partials,
            "max_merge": plan.max_leaf_partials, "sharing": tree.path_tokens / plan.kv_tokens_read}


def tree_table(sweep_path: str, repeats: int) -> None:
    from .bench.cases import load_sweep

    trees = {c.tree.name: c.tree for c in load_sweep(sweep_path).cases if c.tree is not None}
    print(f"tree attention plans (32/32 heads, page 64): PagedTree + plan_tree per tree change, median of {repeats}")
    print("| tree | nodes | leaves | depth | unique tokens | plan (ms) | items | partial rows | max merge | "
          "sharing / ideal |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, t in trees.items():
        r = measure_tree(t, repeats=repeats)
        print(f"| {name} | {t.n_nodes} | {t.n_leaves} | {t.depth} | {t.unique_tokens} | {r['plan_ms']:.2f} | "
              f"{r['items']} | {r['partials']} | {r['max_merge']} | {r['sharing']:.2f} / {t.sharing_ideal:.2f} |",
              flush=True)


def _fmt(value, spec: str, target=None) -> str:
    if value is None:
        return "n/a"
    text = format(value, spec)
    return text if target is None else f"{text} ({'ok' if value <= target else 'over'} <= {target:g})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tkprefix plan-cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqs", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--shared", type=int, default=4096)
    parser.add_argument("--private", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trees", metavar="SWEEP.yaml", help="also the tree attention plans of this sweep's trees")
    args = parser.parse_args(argv)
    for name, value in (("--shared", args.shared), ("--private", args.private), ("--repeats", args.repeats)):
        if value < (1 if name == "--repeats" else 0):
            parser.error(f"{name} must be {'positive' if name == '--repeats' else 'non-negative'}, got {value}")
    if any(n < 1 for n in args.seqs) or args.shared + args.private < 1:
        parser.error("--seqs must be positive and --shared + --private at least 1")
    torch.set_num_threads(1)  # the K/V writes here are tiny; intra-op threads would only add synchronization
    print(f"machine: {machine()}")
    print(f"tree: one shared prompt of {args.shared} tokens, {args.private} private tokens per sequence, chunk 64; "
          "step = mean over 64 lock-step decode steps, the border step included")
    measure(2, 64, 64, 1, edits=1)  # untimed: torch's first-call set-up would otherwise land in the first row
    print("| seqs | build (s) | plan rebuild (ms) | step host (us) | step + device half on CPU (us) [1] | "
          "work lists (ms, /64) | fork (us) | remove (us) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.seqs:
        r = measure(n, args.shared, args.private, args.repeats)
        step_t = TARGETS["step_us"].get(n)
        work = "n/a" if r["work_ms"] is None else f"{r['work_ms']:.2f} ({1e3 * r['work_ms'] / 64:.1f} us)"
        print(f"| {n} | {_fmt(r['build_s'], '.3f', TARGETS['build_s'].get(n))} | {r['rebuild_ms']:.2f} | "
              f"{_fmt(r['host_us'], '.1f', step_t)} | {_fmt(r['eager_us'], '.1f')} | {work} | "
              f"{_fmt(r['fork_us'], '.1f', TARGETS['edit_us'])} | {_fmt(r['remove_us'], '.1f', TARGETS['edit_us'])} |",
              flush=True)
    print("build: one add_seqs call (the batched add) for all sequences, median of 3 builds.\n"
          "[1] append_tokens(None, ...) + plan() on a CPU cache: the host half plus the device half (step_lengths + "
          "write_kv) run by torch on this CPU. Not a host cost: in the CUDA-graph step the device half is inside the "
          "graph, so no target applies (the step target is for 'step host').")
    if args.trees:
        tree_table(args.trees, args.repeats)
    return 0
