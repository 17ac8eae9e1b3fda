"""The Triton tree peers end to end on the CPU: the adapters' own prepare() and run() with the artifact's kernels
executed by Triton's interpreter (TRITON_INTERPRET=1), outputs (NaN-poisoned first) against the float64 reference.

The interpreter must be on before triton is first imported, so the kernels run in a child process (a pytest process
that already imported triton, e.g. for GPU tests, stays as it is). Needs triton (the GPU machine has it; a CPU machine
may `pip install --target <dir> triton` and put it on PYTHONPATH), numpy < 2.3 (the interpreter converts 1-element
arrays to scalars; < 2 for triton 3.1) and third_party/FastTree-Artifact; skipped with the reason otherwise. float16
only: the interpreter's bfloat16 tl.dot is not exact (numpy has no bfloat16), so bf16 is left to
tests/gpu/test_peers_tree.py."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tkprefix.bench import peers_tree as pt


def _reason() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton not installed"
    from importlib.metadata import version

    import numpy

    np_version = tuple(int(x) for x in numpy.__version__.split(".")[:2])
    triton = version("triton")
    if np_version >= (2, 3):
        return f"numpy {numpy.__version__}: Triton's interpreter needs numpy < 2.3"
    if tuple(int(x) for x in triton.split(".")[:2]) < (3, 2) and np_version >= (2, 0):
        # triton 3.1 (torch 2.5.1's, the Docker image's) computes NaN in its interpreter with numpy 2.0.2 and 2.2.6;
        # with numpy 1.26.4 these tests pass there, as with triton 3.5.1 and numpy 2.2.6
        return f"numpy {numpy.__version__}: the interpreter of triton {triton} needs numpy < 2"
    if not pt.artifact_kernel().exists():
        return "third_party/FastTree-Artifact not extracted (scripts/bench/extract_tree_peers.sh)"
    return None


pytestmark = pytest.mark.skipif(_reason() is not None, reason=_reason() or "")

CHILD = r'''
import importlib.util, json, sys, types
import torch
from tkprefix.bench import peers_tree as pt
from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs, reference_rows, rel_err
from tkprefix.bench.trees import generate


class TorchOnCpu(types.ModuleType):  # the artifact's planners build their tables under torch.device("cuda")
    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def device(*args, **kw):
        return torch.device("cpu")


pt._load_sglang()  # stubs sglang's one import (and loads the module; replaced below)
for name, rel in (("fasttree", "kernel_bench/fasttree.py"), ("deft", "kernel_bench/DeFT.py"),
                  ("sglang", "sglang/srt/layers/decode_attention.py")):
    path = pt.artifact_root() / rel
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"interp_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.torch = TorchOnCpu("torch")
    pt._MODULES[name] = mod
cases = [
    Case.for_tree("t", generate({"name": "uneven", "fanout": [[2, 3], [1, 3]], "lengths": [[40, 90], [3, 50], [1, 30]],
                                 "seed": 3}), 4, 4, 32, dtype="float16"),
    Case.for_tree("t", generate({"name": "pruned", "fanout": [[2, 3], [2, 3]], "lengths": [[20, 60], [5, 40], [1, 30]],
                                 "prune": 0.4, "seed": 5}), 8, 2, 32, dtype="float16"),
    Case("t", 6, 4, 4, 32, ((1, 40), (3, 33)), 9, dtype="float16"),
]
out = {}
for i, case in enumerate(cases):
    inp = make_inputs(case, "cpu", seed=1)
    ref = reference_rows(case, inp, list(range(case.batch)))
    for impl in (pt.FastTree(), pt.DeFT(), pt.SglangTriton()):
        key = f"{impl.name}/{i}"
        try:
            assert impl.unavailable_reason(case) is None, impl.unavailable_reason(case)
            p = impl.prepare(case, inp)
            o = p.canonical(p.run())
            t = case.tree
            out[key] = {"shape": list(o.shape), "finite": bool(torch.isfinite(o).all()), "err": rel_err(o, ref),
                        "read": p.extra.get("kv_tokens_read"), "unique": t.unique_tokens if t else None,
                        "path": t.path_tokens if t else None}
        except Exception as e:  # noqa: BLE001
            out[key] = {"error": f"{type(e).__name__}: {e}"}
print("RESULT " + json.dumps(out))
'''


@pytest.fixture(scope="module")
def results():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=900)
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, f"child failed (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("case", [0, 1, 2])
@pytest.mark.parametrize("impl", ["fasttree", "deft", "sglang_triton"])
def test_tree_peer_kernels_match_reference_in_the_interpreter(results, impl, case):
    r = results[f"{impl}/{case}"]
    assert "error" not in r, r
    assert r["finite"] and r["err"] < 1e-2, r
    if r["unique"] is not None:  # a tree: the plan reads each token at least once, at most once per leaf
        assert r["read"] == r["path"] if impl == "sglang_triton" else r["unique"] <= r["read"] <= r["path"], r
