"""GPU test support: the `gpu` marker's skip (with the reason) and poisoning helpers.

Every test in tests/gpu that needs the TK kernels uses the `tk_hydragen` fixture (or `requires_tk`); where no H100,
CUDA build of torch, nvcc or ThunderKittens is present they are skipped with the reason from
`tkprefix.build.is_available()`, never failed.
"""
from __future__ import annotations

import pytest
import torch


def tk_reason() -> str | None:
    try:
        from tkprefix import build
    except ImportError as exc:  # pragma: no cover
        return f"tkprefix.build cannot be imported: {exc}"
    ok, reason = build.is_available()
    return None if ok else reason


@pytest.fixture(scope="session")
def requires_tk():
    reason = tk_reason()
    if reason:
        pytest.skip(f"TK kernels unavailable: {reason}")
    from tkprefix import build

    return build.load_extension()


@pytest.fixture
def poison_allocator():
    """Fill the caching allocator's free memory with NaN before a call, so outputs the kernels fail to write show up
    as NaN even when the op allocates them itself."""

    def poison(nbytes: int = 256 << 20):
        junk = torch.full((nbytes // 4,), float("nan"), device="cuda", dtype=torch.float32)
        del junk  # back to the cache, NaN-filled: the next allocations reuse it

    return poison
