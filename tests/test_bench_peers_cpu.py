"""The PyTorch peers' decompositions on the CPU against the float64 reference of the harness (small shapes)."""
import pytest
import torch

from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs, pick_rows, reference_rows, rel_err
from tkprefix.bench.peers import SdpaHydragen, SdpaNaive, TkHydragen


@pytest.mark.parametrize("case", [
    Case("t", 6, 8, 2, 64, ((1, 70), (3, 33)), 17, dtype="float32"),
    Case("t", 4, 4, 4, 64, ((1, 50),), 0, dtype="float32"),
    Case("t", 5, 8, 1, 64, (), 29, dtype="float32"),
])
def test_torch_peers_match_float64_reference(case):
    inp = make_inputs(case, "cpu", seed=3)
    rows = list(range(case.batch))
    ref = reference_rows(case, inp, rows)
    for impl in (SdpaNaive(), SdpaHydragen(), TkHydragen("torch_hydragen", "torch")):
        p = impl.prepare(case, inp)
        out = p.canonical(p.run())
        assert out.shape == (case.batch, case.q_heads, case.head_dim), impl.name
        assert rel_err(out[rows], ref) < 1e-5, impl.name


def test_pick_rows():
    assert pick_rows(3) == [0, 1, 2]
    r = pick_rows(100, 4)
    assert r[0] == 0 and r[-1] == 99 and len(r) == 4 and r == sorted(set(r))


def test_upstream_hydragen_adapter_passes_the_harness_seq_len(monkeypatch):
    """The upstream adapter (flash-attn, in the Docker image only) prepares with a stand-in module: it passes the
    used lengths, as upstream's decode step does."""
    import sys
    import types

    from tkprefix.bench.peers import HydragenUpstream

    seen = {}

    def upstream_nopad(q, k, v, shared_ks, shared_vs, seq_len):
        seen["seq_len"] = seq_len
        return q

    stub = types.ModuleType("hydragen.attention")
    stub.hydragen_attention_nopad = upstream_nopad
    monkeypatch.setitem(sys.modules, "hydragen", types.ModuleType("hydragen"))
    monkeypatch.setitem(sys.modules, "hydragen.attention", stub)
    case = Case("t", 3, 4, 4, 64, ((1, 20),), 7, dtype="float32")
    HydragenUpstream().prepare(case, make_inputs(case, "cpu", seed=1)).run()
    assert seen["seq_len"].tolist() == [7, 7, 7]
