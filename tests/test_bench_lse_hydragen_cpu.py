"""The Hydragen decomposition's kernel hook (lse_hydragen.py) on the CPU, and FA4's row when it is absent."""
import importlib.util

import pytest

from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs, reference_rows, rel_err
from tkprefix.bench.lse_hydragen import FA4_NOT_CARRIED, Fa4Hydragen
from tkprefix.bench.peers import SdpaHydragen, sdpa_with_lse


class _Dense(SdpaHydragen):  # a stand-in kernel: the CPU flash op on dense operands, counting its calls
    contiguous_suffix = True
    calls = 0

    def attn_with_lse(self, q, k, v):
        assert k.is_contiguous() and v.is_contiguous()
        type(self).calls += 1
        return sdpa_with_lse(q, k, v)


def test_kernel_hook_matches_float64():
    case = Case("t", 6, 8, 2, 64, ((1, 70), (3, 33)), 17, dtype="float32")
    inp = make_inputs(case, "cpu", seed=5)
    p = _Dense().prepare(case, inp)
    out = p.canonical(p.run())
    assert _Dense.calls == 3  # two shared levels + the suffixes
    assert rel_err(out, reference_rows(case, inp, list(range(6)))) < 1e-5


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn installed here")
def test_fa4_row_says_why():
    reason = Fa4Hydragen().unavailable_reason(Case("t", 4, 8, 2, 64, ((1, 8),), 4))
    assert reason == FA4_NOT_CARRIED and "91,954,433 B" in reason and "64 MiB" in reason
