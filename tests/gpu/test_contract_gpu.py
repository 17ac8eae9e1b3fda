"""One input contract on every backend, on the GPU (issue 14): the cases of tests/contract.py with CUDA tensors, where
`tk` and `auto` run the TK kernels. Bad input: the same error type and message on torch, tk and auto; valid input:
the same result. Also: a decode step with seq_len still captures into a CUDA graph (the value check is skipped
during capture), and the eager cost of that check on one decode step.

    TKPREFIX_REPORT_DIR=$OUT python -m pytest -m gpu tests/gpu/test_contract_gpu.py -s -q
writes contract_cuda_*.md (the case x backend -> outcome tables) and validate_cost.txt to $OUT.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import contract  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("d", [64, 128])
def test_every_backend_gives_the_same_outcome_on_gpu(requires_tk, dtype, d):
    table, bad = contract.run_table("cuda", dtype, d=d)
    name = f"{str(dtype).replace('torch.', '')}_d{d}"
    contract.report(contract.markdown(table, title=f"CUDA ({name}): torch, tk, auto"), f"contract_cuda_{name}.md")
    assert not bad, "\n".join(bad)


def decode_step(B=32, Hq=32, Hkv=8, D=128, P=1024, S=256):
    """One decode step's inputs (the c1-like shape of the design's eager dispatch measurement)."""
    g = torch.Generator(device="cuda").manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, device="cuda", dtype=torch.bfloat16)

    q, k, v, pk, pv = rnd(B, 1, Hq, D), rnd(B, S, Hkv, D), rnd(B, S, Hkv, D), rnd(1, P, Hkv, D), rnd(1, P, Hkv, D)
    return q, k, v, pk, pv, torch.full((B,), S - 3, dtype=torch.int32, device="cuda")


def test_decode_step_with_seq_len_captures_into_a_graph(requires_tk):
    from tkprefix import hydragen_attention_nopad

    q, k, v, pk, pv, sl = decode_step()
    eager = hydragen_attention_nopad(q, k, v, [pk], [pv], sl, backend="tk")  # validate=True (default)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        hydragen_attention_nopad(q, k, v, [pk], [pv], sl, backend="tk")
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = hydragen_attention_nopad(q, k, v, [pk], [pv], sl, backend="tk")
    graph.replay()
    torch.cuda.synchronize()
    assert torch.allclose(out.float(), eager.float(), rtol=1e-2, atol=1e-2)


def test_eager_cost_of_the_seq_len_check(requires_tk):
    """Per-call time of 200 back-to-back eager decode steps (tk backend) with validate=True (one aminmax and one
    device-to-host copy per call, so the host waits for the GPU) and validate=False. Printed and written to
    $TKPREFIX_REPORT_DIR/validate_cost.txt; a measurement for docs/design.md, not a speed assertion."""
    import time

    from tkprefix import hydragen_attention_nopad
    from tkprefix.validation import check_seq_len_values

    lines = []
    for shape in ({"B": 1, "Hq": 8, "Hkv": 8, "D": 128, "P": 256, "S": 64}, {}):
        q, k, v, pk, pv, sl = decode_step(**shape)
        S = k.shape[1]

        def per_call_us(fn, n=200):
            for _ in range(10):
                fn()
            torch.cuda.synchronize()
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                torch.cuda.synchronize()
                best = min(best, (time.perf_counter() - t0) / n * 1e6)
            return best

        on = per_call_us(lambda: hydragen_attention_nopad(q, k, v, [pk], [pv], sl, backend="tk"))
        off = per_call_us(lambda: hydragen_attention_nopad(q, k, v, [pk], [pv], sl, backend="tk", validate=False))
        check = per_call_us(lambda: check_seq_len_values(sl, S))
        label = f"B{q.shape[0]} Hq{q.shape[2]}/Hkv{k.shape[2]} D{q.shape[3]} P{pk.shape[1]} S{S}"
        lines.append(f"eager decode step {label}: validate=True {on:.1f} us/call, validate=False {off:.1f} us/call "
                     f"(+{on - off:.1f} us, {100 * (on - off) / off:.0f} %); the check alone {check:.1f} us/call")
    contract.report("\n".join(lines) + "\n", "validate_cost.txt")
