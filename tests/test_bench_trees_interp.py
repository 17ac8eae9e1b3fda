"""The Triton tree peers end to end on the CPU: the adapters' own prepare() and run() with the artifact's kernels
executed by Triton's interpreter (TRITON_INTERPRET=1), outputs against the float64 reference.

Needs triton (the GPU machine has it; a CPU machine may `pip install --target <dir> triton` and put it on
PYTHONPATH), numpy < 2.3 (the interpreter converts 1-element arrays to scalars) and third_party/FastTree-Artifact;
skipped with the reason otherwise. float16 only: the interpreter's bfloat16 tl.dot is not exact (numpy has no
bfloat16), so bf16 is left to tests/gpu/test_peers_tree.py."""
from __future__ import annotations

import importlib.util
import os
import sys
import types

import pytest
import torch

from tkprefix.bench import peers_tree as pt
from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs, reference_rows, rel_err
from tkprefix.bench.trees import generate


def _reason() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton not installed"
    import numpy

    if tuple(int(x) for x in numpy.__version__.split(".")[:2]) >= (2, 3):
        return f"numpy {numpy.__version__}: Triton's interpreter needs numpy < 2.3"
    if not (pt.artifact_root() / "kernel_bench" / "fasttree.py").exists():
        return "third_party/FastTree-Artifact not extracted (scripts/bench/extract_tree_peers.sh)"
    return None


pytestmark = pytest.mark.skipif(_reason() is not None, reason=_reason() or "")


class _TorchOnCpu(types.ModuleType):  # the artifact's planners build their tables under torch.device("cuda")
    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def device(*args, **kw):
        return torch.device("cpu")


@pytest.fixture(scope="module")
def interpreted():
    old_env = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    saved = dict(pt._MODULES)
    pt._load_sglang()  # stubs sglang's one import; the module itself is reloaded below under the interpreter
    root = pt.artifact_root()
    for name, rel in (("fasttree", "kernel_bench/fasttree.py"), ("deft", "kernel_bench/DeFT.py"),
                      ("sglang", "sglang/srt/layers/decode_attention.py")):
        path = root / rel
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(f"interp_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.torch = _TorchOnCpu("torch")
        pt._MODULES[name] = mod
    yield
    pt._MODULES.clear()
    pt._MODULES.update(saved)
    if old_env is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = old_env


CASES = [
    Case.for_tree("t", generate({"name": "uneven", "fanout": [[2, 3], [1, 3]], "lengths": [[40, 90], [3, 50], [1, 30]],
                                 "seed": 3}), 4, 4, 32, dtype="float16"),
    Case.for_tree("t", generate({"name": "pruned", "fanout": [[2, 3], [2, 3]], "lengths": [[20, 60], [5, 40], [1, 30]],
                                 "prune": 0.4, "seed": 5}), 8, 2, 32, dtype="float16"),
    Case("t", 6, 4, 4, 32, ((1, 40), (3, 33)), 9, dtype="float16"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label())
@pytest.mark.parametrize("impl", [pt.FastTree(), pt.DeFT(), pt.SglangTriton()], ids=lambda i: i.name)
def test_tree_peer_kernels_match_reference_in_the_interpreter(interpreted, impl, case):
    assert impl.unavailable_reason(case) is None
    inp = make_inputs(case, "cpu", seed=1)
    p = impl.prepare(case, inp)
    out = p.canonical(p.run())
    assert out.shape == (case.batch, case.q_heads, case.head_dim) and torch.isfinite(out).all()
    assert rel_err(out, reference_rows(case, inp, list(range(case.batch)))) < 1e-2
    if case.tree is not None:
        t = case.tree
        read = p.extra["kv_tokens_read"]
        assert (t.unique_tokens <= read <= t.path_tokens) if impl.name != "sglang_triton" else read == t.path_tokens
