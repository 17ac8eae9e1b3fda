"""GPU checks of helper "native"'s adapters against the float64 reference on small cases: upstream ChunkAttention
(built by scripts/peers/build_chunk_attn_upstream.sh), the prior TK chunk-first kernel, Hydragen over cuDNN, and the
forest (c7) through FlashInfer's cascade and the prefix-tree cache. Each skips with the reason where its peer is absent.
"""
import pytest
import torch

from tkprefix.bench.cases import Case
from tkprefix.bench.forest import make_forest
from tkprefix.bench.inputs import make_inputs, pick_rows, reference_rows, rel_err
from tkprefix.bench.peers import get_impl

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():  # pragma: no cover - CPU machines
    pytest.skip("no CUDA GPU", allow_module_level=True)

FOREST = make_forest(prompts=6, prompt_len=(100, 700), fanout=(2, 9), suffix=(16, 200), doc_frac=0.5,
                     docs_per_prompt=(2, 3), doc_len=(50, 300), seed=7)


def _check(name: str, case: Case, tol: float = 1e-2) -> float:
    impl = get_impl(name)
    reason = impl.unavailable_reason(case)
    if reason:
        pytest.skip(f"{name}: {reason}")
    inp = make_inputs(case, "cuda", seed=1)
    rows = pick_rows(case.batch, 6)
    p = impl.prepare(case, inp)
    out = p.canonical(p.run())
    torch.cuda.synchronize()
    err = rel_err(out[rows].cpu(), reference_rows(case, inp, rows).cpu())
    assert err < tol, f"{name}: rel_err {err:.2e}"
    return err


@pytest.mark.parametrize("case", [
    Case("t", 32, 32, 32, 128, ((1, 4096),), 512),
    Case("t", 24, 16, 16, 128, ((1, 1000), (4, 300)), 77),  # unaligned levels: partial chunks stay private
    Case("t", 16, 16, 16, 128, ((1, 2048),), 0, dtype="float16"),
])
def test_chunk_attn_upstream(case):
    _check("chunk_attn_upstream", case)


@pytest.mark.parametrize("batch", [1, 16, 64])
def test_prior_tk_chunk_first(batch):
    _check("prior_tk_chunk_first", Case("t", batch, 16, 16, 128, ((1, 4096),), 0))


@pytest.mark.parametrize("case", [
    Case("t", 32, 32, 8, 128, ((1, 2048), (8, 512)), 256),
    Case("t", 16, 32, 32, 128, (), 300),
])
def test_cudnn_hydragen(case):
    _check("cudnn_hydragen", case)


@pytest.mark.parametrize("name", ["flashinfer_cascade", "tk_chunk_attn", "torch_chunk_attn"])
def test_forest(name):
    _check(name, Case("t", FOREST.batch, 32, 8, 128, (), 0, forest=FOREST))
