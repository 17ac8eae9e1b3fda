"""One input contract on every backend (issue 14): the cases, the runner and the case x backend -> outcome table.

Every public op gets each bad input of the list below, and a few valid edge inputs, once per backend (torch, tk,
auto). A case is consistent when every backend raises the same error type with the same message, or every backend
returns the same result (within the dtype's tolerance of the torch backend's). Used by tests/test_contract.py (CPU:
tk and auto must reject bad input exactly as torch does; valid inputs need a GPU for tk) and by
tests/gpu/test_contract_gpu.py (CUDA tensors, where tk runs its kernels).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from tkprefix import ChunkKVCache, chunk_attention, decode_attention, hydragen_attention_nopad, merge_states
from tkprefix import prefix_attention

BACKENDS = ("torch", "tk", "auto")


@dataclass
class Case:
    op: str
    name: str
    call: Callable[[str], object]  # backend -> result
    valid: bool = False             # a valid input: every backend must return the same result


def cases(device: str, dtype: torch.dtype, d: int = 64) -> list[Case]:
    """The cases on `device` in `dtype` (head_dim d: 64 or 128 where tk should run)."""
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, dt=dtype):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dt)

    B, S, P, Hq, Hkv = 4, 40, 70, 8, 2
    q, k, v = rnd(B, 1, Hq, d), rnd(B, S, Hkv, d), rnd(B, S, Hkv, d)
    pk, pv = rnd(1, P, Hkv, d), rnd(1, P, Hkv, d)
    other = torch.float64 if dtype == torch.float32 else (torch.float16 if dtype == torch.bfloat16 else torch.bfloat16)

    def lens(*values, dt=torch.int32, dev=device):
        return torch.tensor(values, dtype=dt, device=dev)

    o4, lse4 = rnd(B, 1, Hq, d), rnd(B, 1, Hq, dt=torch.float32)
    o4b, lse4b = rnd(B, 1, Hq, d), rnd(B, 1, Hq, dt=torch.float32)
    out = [
        # prefix_attention
        Case("prefix_attention", "q not a tensor", lambda b: prefix_attention(q.tolist(), pk, pv, backend=b)),
        Case("prefix_attention", "q 3-D", lambda b: prefix_attention(q[:, 0], pk, pv, backend=b)),
        Case("prefix_attention", "q integer dtype", lambda b: prefix_attention(q.to(torch.int32), pk, pv, backend=b)),
        Case("prefix_attention", "k dtype differs from q", lambda b: prefix_attention(q, pk.to(other), pv, backend=b)),
        Case("prefix_attention", "k, v shapes differ", lambda b: prefix_attention(q, pk, pv[:, :-1], backend=b)),
        Case("prefix_attention", "k head_dim differs", lambda b: prefix_attention(
            q, rnd(1, P, Hkv, d // 2), rnd(1, P, Hkv, d // 2), backend=b)),
        Case("prefix_attention", "q heads not a multiple of kv heads", lambda b: prefix_attention(
            q, rnd(1, P, 3, d), rnd(1, P, 3, d), backend=b)),
        Case("prefix_attention", "prefix rows do not divide batch", lambda b: prefix_attention(
            q, rnd(3, P, Hkv, d), rnd(3, P, Hkv, d), backend=b)),
        Case("prefix_attention", "valid", lambda b: prefix_attention(q, pk, pv, backend=b), valid=True),
        Case("prefix_attention", "valid: empty prefix (P = 0)", lambda b: prefix_attention(
            q, pk[:, :0], pv[:, :0], backend=b), valid=True),
        # decode_attention
        Case("decode_attention", "seq_len negative", lambda b: decode_attention(q, k, v, lens(1, -5, 2, 3), backend=b)),
        Case("decode_attention", "seq_len above S", lambda b: decode_attention(q, k, v, lens(1, S + 1, 2, 3), backend=b)),
        Case("decode_attention", "seq_len float", lambda b: decode_attention(
            q, k, v, lens(1, 2, 3, 4, dt=torch.float32), backend=b)),
        Case("decode_attention", "seq_len int16", lambda b: decode_attention(
            q, k, v, lens(1, 2, 3, 4, dt=torch.int16), backend=b)),
        Case("decode_attention", "seq_len wrong length", lambda b: decode_attention(q, k, v, lens(1, 2, 3), backend=b)),
        Case("decode_attention", "seq_len 2-D", lambda b: decode_attention(q, k, v, lens(1, 2, 3, 4)[None], backend=b)),
        Case("decode_attention", "k batch differs from q", lambda b: decode_attention(q, k[:2], v[:2], backend=b)),
        Case("decode_attention", "causal with more queries than keys", lambda b: decode_attention(
            rnd(B, S + 1, Hq, d), k, v, backend=b)),
        Case("decode_attention", "validate not a bool", lambda b: decode_attention(
            q, k, v, lens(1, 2, 3, 4), backend=b, validate="yes")),
        Case("decode_attention", "valid: seq_len 0 and S", lambda b: decode_attention(
            q, k, v, lens(0, S, 1, S - 1), backend=b), valid=True),
        Case("decode_attention", "valid: causal", lambda b: decode_attention(q, k, v, backend=b), valid=True),
        # merge_states
        Case("merge_states", "o shapes differ", lambda b: merge_states(o4, lse4, o4b[:2], lse4b[:2], backend=b)),
        Case("merge_states", "lse shape wrong", lambda b: merge_states(o4, lse4[..., :1], o4b, lse4b, backend=b)),
        Case("merge_states", "lse dtype bf16", lambda b: merge_states(
            o4, lse4.to(torch.bfloat16), o4b, lse4b, backend=b)),
        Case("merge_states", "lse dtypes differ", lambda b: merge_states(
            o4, lse4, o4b, lse4b.to(torch.float64), backend=b)),
        Case("merge_states", "valid", lambda b: merge_states(o4, lse4, o4b, lse4b, backend=b), valid=True),
        Case("merge_states", "valid: one side empty (lse = -inf)", lambda b: merge_states(
            o4, torch.full_like(lse4, -float("inf")), o4b, lse4b, backend=b), valid=True),
        # hydragen_attention_nopad
        Case("hydragen_attention_nopad", "shared_ks not a list", lambda b: hydragen_attention_nopad(
            q, k, v, pk, [pv], backend=b)),
        Case("hydragen_attention_nopad", "level counts differ", lambda b: hydragen_attention_nopad(
            q, k, v, [pk, pk], [pv], backend=b)),
        Case("hydragen_attention_nopad", "shared rows do not divide batch", lambda b: hydragen_attention_nopad(
            q, k, v, [rnd(3, P, Hkv, d)], [rnd(3, P, Hkv, d)], backend=b)),
        Case("hydragen_attention_nopad", "seq_len negative", lambda b: hydragen_attention_nopad(
            q, k, v, [pk], [pv], lens(1, -5, 2, 3), backend=b)),
        Case("hydragen_attention_nopad", "seq_len above S", lambda b: hydragen_attention_nopad(
            q, k, v, [pk], [pv], lens(1, 2, S + 7, 3), backend=b)),
        Case("hydragen_attention_nopad", "seq_len int64 above S", lambda b: hydragen_attention_nopad(
            q, k, v, [pk], [pv], lens(1, 2, 3, 2**40, dt=torch.int64), backend=b)),
        Case("hydragen_attention_nopad", "valid: seq_len 0 .. S", lambda b: hydragen_attention_nopad(
            q, k, v, [pk], [pv], lens(0, 1, S // 2, S), backend=b), valid=True),
    ]
    if device != "cpu":
        out += [
            Case("decode_attention", "seq_len on the CPU", lambda b: decode_attention(
                q, k, v, lens(1, 2, 3, 4, dev="cpu"), backend=b)),
            Case("merge_states", "lse on the CPU", lambda b: merge_states(o4, lse4.cpu(), o4b, lse4b, backend=b)),
        ]
    out += chunk_cases(device, dtype, d, rnd)
    return out


def chunk_cases(device, dtype, d, rnd) -> list[Case]:
    """chunk_attention over a cache made with device=`device` as given ("cuda" names no index: the check must still
    match q on cuda:0)."""
    hkv, hq = 2, 8
    c = ChunkKVCache(hkv, d, chunk_size=64, dtype=dtype, device=device, capacity_chunks=16)
    prompt = list(range(100))
    for tail in ([1000], [2000, 2001, 2002]):
        n = len(prompt) + len(tail)
        c.add_seq(prompt + tail, rnd(n, hkv, d), rnd(n, hkv, d))
    q = rnd(2, hq, d)
    other = torch.float16 if dtype != torch.float16 else torch.bfloat16
    kv1, seq = rnd(1, hkv, d), c.seq_ids[0]
    # ChunkKVCache methods take no backend: one implementation for all (the column is the same call thrice); last, so
    # that a call the cache wrongly accepted cannot change the chunk_attention cases
    methods = [
        Case("ChunkKVCache", "add_seq: no tokens", lambda b: c.add_seq([], kv1[:0], kv1[:0])),
        Case("ChunkKVCache", "add_seq: k rows differ from tokens", lambda b: c.add_seq([5, 6], kv1, kv1)),
        Case("ChunkKVCache", "add_seq: k dtype differs", lambda b: c.add_seq([5], kv1.to(other), kv1)),
        Case("ChunkKVCache", "add_seq: token not an int", lambda b: c.add_seq(["a"], kv1, kv1)),
        Case("ChunkKVCache", "append_token: unknown seq_id", lambda b: c.append_token(10**6, 7, kv1[0], kv1[0])),
        Case("ChunkKVCache", "append_token: k shape", lambda b: c.append_token(seq, 7, kv1, kv1)),
        Case("ChunkKVCache", "fork: unknown seq_id", lambda b: c.fork(10**6)),
        Case("ChunkKVCache", "remove_seq: unknown seq_id", lambda b: c.remove_seq(10**6)),
    ]
    return [
        Case("chunk_attention", "cache not a ChunkKVCache", lambda b: chunk_attention(q, {"k": q}, backend=b)),
        Case("chunk_attention", "q rows differ from sequences", lambda b: chunk_attention(q[:1], c, backend=b)),
        Case("chunk_attention", "q head_dim differs", lambda b: chunk_attention(q[..., : d // 2], c, backend=b)),
        Case("chunk_attention", "q dtype differs from cache", lambda b: chunk_attention(q.to(other), c, backend=b)),
        Case("chunk_attention", "q 2-D", lambda b: chunk_attention(q[0], c, backend=b)),
        Case("chunk_attention", "valid", lambda b: chunk_attention(q, c, backend=b), valid=True),
    ] + methods


# ------------------------------------------------------------------------------------------------------- running
def outcome(case: Case, backend: str):
    """("raise", "Type: message") or ("ok", result tensors)."""
    try:
        result = case.call(backend)
    except Exception as e:  # noqa: BLE001 - the outcome is the error
        return "raise", f"{type(e).__name__}: {e}"
    if torch.is_tensor(result):
        result = (result,)
    return "ok", tuple(t.detach().float().cpu() for t in result)


def same_result(a, b, dtype) -> bool:
    tol = 3e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-5
    return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x, y, rtol=tol, atol=tol, equal_nan=True)
                                    for x, y in zip(a, b))


def run_table(device: str, dtype: torch.dtype, backends=BACKENDS, runnable=BACKENDS, d: int = 64):
    """({(op, case): {backend: outcome text}}, [inconsistent cases]). Bad input must give the same error on every
    backend; valid input the same result as the first backend on every backend in `runnable` (the others may only
    decline it: tk on the CPU)."""
    table, bad = {}, []
    for case in cases(device, dtype, d):
        got = {b: outcome(case, b) for b in backends}
        kind0, value0 = got[backends[0]]
        row = {}
        for b, (kind, value) in got.items():
            if kind == "raise":
                row[b] = value
            elif b == backends[0]:
                row[b] = "ok"
            else:
                row[b] = "ok (same result)" if kind0 == "ok" and same_result(value, value0, dtype) else "ok, DIFFERENT"
        table[(case.op, case.name)] = row
        if case.valid:
            wrong = {b: row[b] for b in runnable if row[b] not in ("ok", "ok (same result)")}
        else:
            wrong = {b: row[b] for b in backends if row[b] != row[backends[0]] or kind0 == "ok"}
        if wrong:
            bad.append(f"{case.op} / {case.name}: {'valid' if case.valid else 'bad'} input, {wrong} vs {row}")
    return table, bad


def markdown(table, backends=BACKENDS, title: str = "") -> str:
    lines = [f"### {title}", "", "| op | case | " + " | ".join(backends) + " |", "|---|---|" + "---|" * len(backends)]
    for (op, name), row in table.items():
        cells = [row.get(b, "-").replace("|", "\\|") for b in backends]
        lines.append(f"| {op} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(text: str, filename: str) -> None:
    """Print the table; also write it to $TKPREFIX_REPORT_DIR/filename when that is set (e.g. $OUT on the GPU)."""
    print(text)
    folder = os.environ.get("TKPREFIX_REPORT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder, filename).write_text(text)
