"""The `gpu` mark of a TK kernel family's tests: skipped, with the reason, without a CUDA GPU, without sm_90 (H100,
H200), or where the family's extension ops do not load (`load`: e.g. `tk_tree.ops`)."""
from __future__ import annotations

from typing import Callable

import pytest
import torch


def unavailable(what: str, load: Callable[[], object]) -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    if torch.cuda.get_device_capability() != (9, 0):
        return f"needs sm_90 (H100/H200), found {torch.cuda.get_device_name()}"
    try:
        load()
    except Exception as exc:  # noqa: BLE001
        return f"{what} unavailable: {exc}"
    return None


def gpu_mark(what: str, load: Callable[[], object]) -> Callable:
    """A decorator: the `gpu` marker plus the skip with the reason (computed once, when the test module loads)."""
    reason = unavailable(what, load)

    def mark(fn):
        return pytest.mark.gpu(pytest.mark.skipif(reason is not None, reason=reason or "")(fn))

    return mark
