"""``tkprefix check``: GPU correctness suite of the TK ops against an independent float64 oracle → check.csv.

Each op runs on fresh random inputs of odd sizes (prefix lengths that are no multiple of a tile, batch sizes that
are no power of two, empty suffixes, GQA) with the allocator poisoned first (a NaN-filled block of the output's size
left in PyTorch's cache), and is compared by ``‖out − ref‖ / ‖ref‖`` with the oracle written here (loops over
sequences in float64, independent of tkprefix.reference). LSE is compared by its max absolute difference.

Example: ``tkprefix check --out results/live`` (writes results/live/check.csv); ``--backend torch`` checks the
exact PyTorch path the same way (runs on the CPU too: ``--device cpu``).
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from . import schema

TOL = {"bfloat16": 1e-2, "float16": 1e-2, "float32": 1e-4}
LSE_TOL = {"bfloat16": 2e-2, "float16": 2e-2, "float32": 1e-4}


def _attn64(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
    """q ``(M, Hq, D)``, k/v ``(N, Hkv, D)`` → o ``(M, Hq, D)``, lse ``(M, Hq)`` in float64; mask ``(M, N)`` bool."""
    g = q.shape[1] // k.shape[1]
    q, k, v = q.double(), k.double().repeat_interleave(g, 1), v.double().repeat_interleave(g, 1)
    s = torch.einsum("mhd,nhd->hmn", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask[None], float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # (H, M)
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    o = torch.einsum("hmn,nhd->mhd", p, v)
    return o, lse.transpose(0, 1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    den = torch.linalg.vector_norm(b)
    return float(torch.linalg.vector_norm(a - b) / den) if den > 0 else float(torch.linalg.vector_norm(a))


def _lse_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    both_inf = torch.isinf(a) & torch.isinf(b) & (a.sign() == b.sign())
    d = (a - b).abs().masked_fill(both_inf, 0.0)
    return float(d.max()) if d.numel() else 0.0


def _poison(numel: int, dtype: torch.dtype, device: torch.device) -> None:
    if device.type == "cuda":
        t = torch.empty(numel, dtype=dtype, device=device)
        t.fill_(float("nan"))
        del t


def _cases(device: torch.device, dtype: torch.dtype, seed: int, big: bool = True):
    g = torch.Generator(device=device).manual_seed(seed)

    def rnd(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, device=device, dtype=torch.float32).to(dtype)

    # prefix_attention: (B, Nq, Hq, Hkv, D, Bp, P)
    for B, Nq, Hq, Hkv, D, Bp, P in [(3, 1, 8, 8, 128, 1, 1000), (6, 1, 32, 8, 128, 3, 257), (5, 3, 16, 2, 128, 5, 64),
                                     (64, 1, 32, 32, 128, 1, 4096), (2, 7, 4, 1, 128, 1, 33), (1, 1, 8, 1, 64, 1, 129)]:
        if not big and B * P > 10_000:
            continue
        yield "prefix_attention", dict(B=B, Nq=Nq, Hq=Hq, Hkv=Hkv, D=D, Bp=Bp, P=P), (
            rnd(B, Nq, Hq, D), rnd(Bp, P, Hkv, D), rnd(Bp, P, Hkv, D))
    # decode_attention with seq_len (0 allowed) and causal (seq_len=None)
    for B, Nq, Hq, Hkv, D, S, lens in [(5, 1, 8, 8, 128, 300, True), (4, 1, 32, 8, 128, 77, True),
                                       (3, 4, 8, 2, 128, 130, False), (7, 1, 16, 16, 128, 1, False)]:
        q, k, v = rnd(B, Nq, Hq, D), rnd(B, S, Hkv, D), rnd(B, S, Hkv, D)
        sl = None
        if lens:
            sl = torch.randint(0, S + 1, (B,), generator=g, device=device, dtype=torch.int32)
            sl[0] = 0
            sl[-1] = S
        yield "decode_attention", dict(B=B, Nq=Nq, Hq=Hq, Hkv=Hkv, D=D, S=S, seq_len=lens), (q, k, v, sl)
    # hydragen_attention_nopad: two shared levels + suffix
    for B, Hq, Hkv, D, levels, S in [(8, 8, 8, 128, [(1, 300), (4, 65)], 33), (12, 32, 8, 128, [(1, 1024)], 0),
                                     (6, 16, 4, 128, [(2, 129), (6, 7)], 100)]:
        q = rnd(B, 1, Hq, D)
        sks = [rnd(r, n, Hkv, D) for r, n in levels]
        svs = [rnd(r, n, Hkv, D) for r, n in levels]
        sl = torch.full((B,), S, dtype=torch.int32, device=device)
        if S > 1:  # ragged used lengths, one sequence with none
            sl = torch.randint(1, S + 1, (B,), generator=g, device=device, dtype=torch.int32)
            sl[0] = 0
        yield "hydragen_attention_nopad", dict(B=B, Hq=Hq, Hkv=Hkv, D=D, levels=levels, S=S), (
            q, rnd(B, S, Hkv, D), rnd(B, S, Hkv, D), sks, svs, sl)
    # chunk_attention over a random tree: a shared prompt, per-group documents, private tails
    for n_groups, per, Hq, Hkv, D, P, doc, tail in [(2, 3, 8, 8, 128, 200, 70, 40), (3, 2, 32, 8, 128, 129, 64, 1),
                                                    (1, 5, 16, 16, 128, 640, 0, 130)]:
        yield "chunk_attention", dict(groups=n_groups, per=per, Hq=Hq, Hkv=Hkv, D=D, P=P, doc=doc, tail=tail), (
            rnd(n_groups * per, Hq, D), rnd(P, Hkv, D), rnd(P, Hkv, D),
            [(rnd(doc, Hkv, D), rnd(doc, Hkv, D)) for _ in range(n_groups)],
            [(rnd(tail, Hkv, D), rnd(tail, Hkv, D)) for _ in range(n_groups * per)])
    # tree_attention over a paged tree: nodes of any length (1, odd, not page multiples), leaves at different depths
    for name, parents, lengths, Hq, Hkv, D, page, packed in [
            ("depth3", [-1, 0, 1, 1, 0, 4, 4, 4], [257, 33, 1, 70, 16, 5, 129, 2], 32, 8, 128, 16, True),
            ("wide40", [-1] + [0] * 40, [100] + list(range(1, 41)), 8, 8, 128, 64, False),
            ("chain", [-1, 0, 1, 2, 2], [1, 1, 1, 3, 130], 4, 1, 64, 3, True)]:
        yield "tree_attention", dict(tree=name, nodes=len(parents), Hq=Hq, Hkv=Hkv, D=D, page=page, packed=packed), (
            rnd(sum(i not in parents for i in range(len(parents))), Hq, D), parents,
            [rnd(n, Hkv, D) for n in lengths], [rnd(n, Hkv, D) for n in lengths], page, packed)


def _run_one(tk: Any, op: str, shape: dict, args: tuple, backend: str, device: torch.device) -> dict[str, Any]:
    dt = args[0].dtype
    if op == "prefix_attention":
        q, k, v = args
        _poison(q.numel(), dt, device)
        o, lse = tk.prefix_attention(q, k, v, backend=backend)
        B, Nq, Hq, D = q.shape
        per = B // k.shape[0]
        ro = torch.empty(B, Nq, Hq, D, dtype=torch.float64, device=device)
        rl = torch.empty(B, Nq, Hq, dtype=torch.float64, device=device)
        for b in range(B):
            ro[b], rl[b] = _attn64(q[b], k[b // per], v[b // per])
    elif op == "decode_attention":
        q, k, v, sl = args
        _poison(q.numel(), dt, device)
        o, lse = tk.decode_attention(q, k, v, seq_len=sl, backend=backend)
        B, Nq, Hq, D = q.shape
        S = k.shape[1]
        ro = torch.empty(B, Nq, Hq, D, dtype=torch.float64, device=device)
        rl = torch.empty(B, Nq, Hq, dtype=torch.float64, device=device)
        j = torch.arange(S, device=device)
        for b in range(B):
            if sl is None:
                mask = j[None, :] <= (S - Nq + torch.arange(Nq, device=device))[:, None]
            else:
                mask = (j < int(sl[b]))[None].expand(Nq, S)
            ro[b], rl[b] = _attn64(q[b], k[b], v[b], mask)
    elif op == "hydragen_attention_nopad":
        q, k, v, sks, svs, sl = args
        _poison(q.numel(), dt, device)
        o = tk.hydragen_attention_nopad(q, k, v, sks, svs, seq_len=sl, backend=backend)
        lse = None
        B = q.shape[0]
        ro = torch.empty(q.shape, dtype=torch.float64, device=device)
        for b in range(B):
            n = int(sl[b])
            ks = [sk[b // (B // sk.shape[0])] for sk in sks] + [k[b, :n]]
            vs = [sv[b // (B // sv.shape[0])] for sv in svs] + [v[b, :n]]
            ro[b], _ = _attn64(q[b], torch.cat(ks), torch.cat(vs))
        rl = None
    elif op == "chunk_attention":
        q, pk, pv, docs, tails = args
        n_groups = len(docs)
        per = len(tails) // n_groups
        Hkv, D = pk.shape[1], pk.shape[2]
        cache = tk.ChunkKVCache(Hkv, D, chunk_size=64, dtype=dt, device=q.device, capacity_chunks=512)
        P, doc = pk.shape[0], docs[0][0].shape[0]
        full, b_of = [], {}
        for gi in range(n_groups):
            for j in range(per):
                b = gi * per + j
                tail = tails[b][0].shape[0]
                toks = (list(range(P)) + list(range(10**6 + gi * doc, 10**6 + (gi + 1) * doc))
                        + list(range(10**7 + b * tail, 10**7 + (b + 1) * tail)))
                kk = torch.cat([pk, docs[gi][0], tails[b][0]])
                vv = torch.cat([pv, docs[gi][1], tails[b][1]])
                full.append((kk, vv))
                b_of[cache.add_seq(toks, kk, vv)] = b
        order = [b_of[s] for s in cache.seq_ids]
        qq = q[torch.tensor(order, device=device)].contiguous()
        _poison(q.numel(), dt, device)
        o = tk.chunk_attention(qq, cache, backend=backend)
        lse = rl = None
        ro = torch.empty(qq.shape, dtype=torch.float64, device=device)
        for i, b in enumerate(order):
            ro[i] = _attn64(qq[i][None], *full[b])[0][0]
    elif op == "tree_attention":
        q, parents, node_ks, node_vs, page, packed = args
        tree = tk.PagedTree.from_nodes(parents, node_ks, node_vs, page_size=page, packed=packed)
        _poison(q.numel(), dt, device)
        o = tk.tree_attention(q, tree, backend=backend)
        lse = rl = None
        leaves = [i for i in range(len(parents)) if i not in parents]  # preorder numbering: the rows of q
        ro = torch.empty(q.shape, dtype=torch.float64, device=device)
        for r, leaf in enumerate(leaves):
            path, i = [], leaf
            while i >= 0:
                path.append(i)
                i = parents[i]
            path.reverse()
            ro[r] = _attn64(q[r][None], torch.cat([node_ks[i] for i in path]),
                            torch.cat([node_vs[i] for i in path]))[0][0]
    else:  # pragma: no cover
        raise ValueError(op)
    written = bool(torch.isfinite(o).all())
    err = _rel(o, ro) if written else float("nan")
    tol = TOL[str(dt).replace("torch.", "")]
    note = ""
    ok = written and err <= tol
    if lse is not None and rl is not None:
        d = _lse_diff(lse, rl)
        note = f"max |lse - ref| = {d:.3g}"
        ok = ok and d <= LSE_TOL[str(dt).replace("torch.", "")]
    return {"rel_err": err, "tol": tol, "all_written": int(written), "note": note,
            "status": "ok" if ok else schema.wrong(f"rel_err {err:.3g} (tol {tol:g}); all_written={written}; {note}")}


def run_check(backend: str = "tk", device: str = "cuda", dtype: str = "bfloat16", seed: int = 0,
              log: Callable[[str], None] = print, big: bool = True, start: int = 0,
              on_row: Callable[[dict[str, Any]], None] | None = None,
              progress: Callable[[int, str], None] | None = None) -> list[dict[str, Any]]:
    """Rows of the suite from case ``start`` on; on_row(row) after each, progress(index, label) before each."""
    dev = torch.device(device)
    dt = getattr(torch, dtype)
    rows: list[dict[str, Any]] = []
    try:
        import tkprefix as tk
    except Exception as e:  # noqa: BLE001
        return [{"op": "*", "status": schema.unavailable(f"tkprefix not importable: {e}"), "backend": backend,
                 "shape": "", "dtype": dtype, "rel_err": None, "tol": None, "all_written": None, "note": ""}]
    for idx, (op, shape, args) in enumerate(_cases(dev, dt, seed, big)):
        if idx < start:
            continue
        row = {"op": op, "backend": backend, "shape": " ".join(f"{k}={v}" for k, v in shape.items()), "dtype": dtype,
               "case_index": idx, "rel_err": None, "tol": None, "all_written": None, "note": ""}
        if progress:
            progress(idx, f"{op} {row['shape']}")
        try:
            row.update(_run_one(tk, op, shape, args, backend, dev))
        except (ValueError, TypeError, NotImplementedError) as e:
            row.update(status=schema.unavailable(f"{type(e).__name__}: {e}"))
        except Exception as e:  # noqa: BLE001
            log(f"[check] {op} {row['shape']}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
            row.update(status=schema.wrong(f"{type(e).__name__}: {e}"))
        rows.append(row)
        if on_row:
            on_row(row)
        log(f"[check] {op:26s} {row['shape']:60s} {row['status'][:60]} rel_err={row.get('rel_err')}")
    return rows


def _labels(dtype: str, seed: int) -> list[str]:
    """Case labels without running anything (CPU tensors of the same shapes)."""
    return [f"{op} " + " ".join(f"{k}={v}" for k, v in shape.items())
            for op, shape, _ in _cases(torch.device("cpu"), getattr(torch, dtype), seed)]


def _supervised(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """The suite in child processes: a case that hangs (or poisons the CUDA context) becomes a wrong row."""
    from .supervise import read_jsonl, supervise

    rows_path, prog_path = out / ".check_rows.jsonl", out / ".check_progress.jsonl"
    rows_path.unlink(missing_ok=True)
    labels = _labels(args.dtype, args.seed)
    extra: list[dict[str, Any]] = []
    start = 0
    while start < len(labels):
        cmd = [sys.executable, "-m", "tkprefix.bench.check", "--child", "--start", str(start), "--rows",
               str(rows_path), "--progress", str(prog_path), "--backend", args.backend, "--device", args.device,
               "--dtype", args.dtype, "--seed", str(args.seed)]
        rc, last = supervise(cmd, prog_path, args.hang_s)
        if rc == 0:
            break
        i = int(last["case"]) if last else start
        op, shape = labels[i].split(" ", 1)
        why = (f"hang: no completion within {args.hang_s:.0f} s (process killed)" if rc is None
               else f"process died (exit code {rc})")
        print(f"[check] {labels[i]}: {why}", flush=True)
        extra.append({"op": op, "backend": args.backend, "shape": shape, "dtype": args.dtype, "case_index": i,
                      "status": schema.wrong(why), "rel_err": None, "tol": None, "all_written": None, "note": ""})
        start = i + 1
    rows = read_jsonl(rows_path) + extra
    rows.sort(key=lambda r: int(r["case_index"]))
    rows_path.unlink(missing_ok=True)
    prog_path.unlink(missing_ok=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/live", help="directory for check.csv")
    ap.add_argument("--backend", default="tk", choices=["tk", "torch", "auto"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(TOL))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang-s", type=float, default=15.0, help="a case with no completion this long is a hang")
    ap.add_argument("--no-supervise", action="store_true", help="run in this process (no hang protection)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    ap.add_argument("--progress", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("tkprefix check: no CUDA GPU visible (use --backend torch --device cpu for the PyTorch path)",
              file=sys.stderr)
        return 2
    if args.child:
        from .supervise import Progress, append_jsonl

        prog = Progress(args.progress)
        run_check(args.backend, args.device, args.dtype, args.seed, start=args.start,
                  on_row=lambda r: append_jsonl(args.rows, [r]),
                  progress=lambda i, label: prog.step(case=i, stage=label))
        return 0
    out = schema.writable_dir(args.out)  # an unwritable folder fails now, with its name, not after the suite
    if args.no_supervise or not args.device.startswith("cuda"):
        rows = run_check(args.backend, args.device, args.dtype, args.seed)
    else:
        rows = _supervised(args, out)
    schema.write_csv(out / "check.csv", rows, schema.CHECK_COLUMNS + ("case_index",))
    bad = [r for r in rows if r["status"] != "ok"]
    print(f"[check] {len(rows) - len(bad)} passed, {len(bad)} failed -> {out / 'check.csv'}")
    return 1 if any(r["status"].startswith("wrong") for r in rows) else 0


if __name__ == "__main__":  # the child processes start here
    from ..cli import run_command

    raise SystemExit(run_command("check", main, sys.argv[1:]))
