"""Host overhead of the public API's dispatch (validation + backend choice) on top of tk_hydragen, eager calls.

Median wall time per call of back-to-back eager calls (one sync per batch of 20) for: the public
`tkprefix.hydragen_attention_nopad`; the same with the backend check's memo cleared before every call (what every
call paid before the memo); and `tk_hydragen`'s own function. The small shape makes host time visible."""
import statistics
import time

import torch

import tkprefix
import tkprefix.backend
from tkprefix import tk_hydragen


def uncached(*args):
    tkprefix.backend._tk_ready = False
    return tkprefix.hydragen_attention_nopad(*args)


for B, H, D, P, S in ((32, 32, 128, 4096, 512), (4, 8, 128, 256, 32)):
    dev, dt = "cuda", torch.bfloat16
    q = torch.randn(B, 1, H, D, device=dev, dtype=dt)
    k, v = torch.randn(B, S, H, D, device=dev, dtype=dt), torch.randn(B, S, H, D, device=dev, dtype=dt)
    pk, pv = torch.randn(1, P, H, D, device=dev, dtype=dt), torch.randn(1, P, H, D, device=dev, dtype=dt)
    seq_len = torch.full((B,), S, device=dev, dtype=torch.int32)
    args = (q, k, v, [pk], [pv], seq_len)
    for name, fn in (("public", tkprefix.hydragen_attention_nopad), ("public, check uncached", uncached),
                     ("tk_hydragen direct", tk_hydragen.hydragen_attention_nopad)):
        fn(*args)
        torch.cuda.synchronize()
        per_call = []
        for _ in range(10):
            start = time.perf_counter()
            for _ in range(20):
                fn(*args)
            torch.cuda.synchronize()
            per_call.append((time.perf_counter() - start) / 20 * 1e6)
        print(f"B{B} H{H} P{P} S{S} {name}: median {statistics.median(per_call):.1f} us per eager call")
