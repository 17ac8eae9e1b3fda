"""One input contract on every backend, on the CPU: `tk` and `auto` reject every bad input exactly as `torch` does
(same error type, same message), since all checks run before the backend is chosen; valid inputs give the same result
on `torch` and `auto` (tk needs a GPU: tests/gpu/test_contract_gpu.py runs the same cases there).

`pytest tests/test_contract.py -s` prints the case x backend -> outcome table (TKPREFIX_REPORT_DIR=dir also writes it).
"""
import time

import torch

import contract
from tkprefix import hydragen_attention_nopad


def test_every_backend_rejects_bad_input_alike_on_cpu():
    table, bad = contract.run_table("cpu", torch.float32, runnable=("torch", "auto"))
    contract.report(contract.markdown(table, title="CPU (float32, head_dim 64): torch, tk, auto"), "contract_cpu.md")
    assert not bad, "\n".join(bad)
    declined = {row["tk"] for row in table.values() if row["torch"] == "ok"}
    assert declined == {"ValueError: backend='tk' needs CUDA tensors on an H100, got q on cpu"}, declined


def test_out_of_range_seq_len_never_gives_numbers():
    q, k = torch.randn(4, 1, 8, 64), torch.randn(4, 40, 2, 64)
    for lens in ([1, -5, 2, 3], [1, 41, 2, 3]):
        for backend in ("torch", "tk", "auto"):
            try:
                hydragen_attention_nopad(q, k, k, [k[:1]], [k[:1]], torch.tensor(lens), backend=backend)
            except ValueError as e:
                assert "seq_len values must lie in [0, 40]" in str(e)
            else:
                raise AssertionError(f"{backend} returned numbers for seq_len {lens}")


def test_validate_false_skips_only_the_value_check():
    q, k = torch.randn(4, 1, 8, 64), torch.randn(4, 40, 2, 64)
    sl = torch.tensor([0, 40, 7, 39])
    a = hydragen_attention_nopad(q, k, k, [k[:1]], [k[:1]], sl, backend="torch")
    b = hydragen_attention_nopad(q, k, k, [k[:1]], [k[:1]], sl, backend="torch", validate=False)
    assert torch.equal(a, b)


def test_eager_cost_of_the_seq_len_check_on_cpu():
    """Prints the eager cost of the value check beside one decode step (B 32, Hq 32 / Hkv 8, D 128, prefix 1024,
    suffix 256, float32, torch backend); a measurement for docs/design.md, not a speed assertion."""
    from tkprefix.validation import check_seq_len_values

    B, Hq, Hkv, D, P, S = 32, 32, 8, 128, 1024, 256
    q, k, pk = torch.randn(B, 1, Hq, D), torch.randn(B, S, Hkv, D), torch.randn(1, P, Hkv, D)
    sl = torch.full((B,), S - 1, dtype=torch.int32)

    def step(validate):
        return hydragen_attention_nopad(q, k, k, [pk], [pk], sl, backend="torch", validate=validate)

    def median_us(fn, n):
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return sorted(times)[n // 2] * 1e6

    check_us = median_us(lambda: check_seq_len_values(sl, S), 501)
    step_us = median_us(lambda: step(False), 5)
    print(f"\nCPU eager decode step (torch backend, validate=False): {step_us:.0f} us; the seq_len check that "
          f"validate=True adds: {check_us:.1f} us ({100 * check_us / step_us:.3f} %)")
    assert torch.equal(step(True), step(False))
