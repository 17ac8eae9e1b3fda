"""The tree peers (FastTree, DeFT, SGLang's Triton decode, FlashInfer plain decode) and the tree paths of the other
adapters, through the harness's own run_case: each output is checked against the float64 reference (NaN-poisoned
allocator, every element written) before it is timed, eagerly and as a CUDA-graph replay.

Needs a CUDA GPU, triton, flashinfer and third_party/FastTree-Artifact (scripts/bench/extract_tree_peers.sh);
skipped with the reason otherwise. Prints every row so a GPU log shows what each peer did."""
from __future__ import annotations

import pytest
import torch

from tkprefix.bench.cases import Case
from tkprefix.bench.peers_tree import _artifact_reason, flashinfer_dtype_reason
from tkprefix.bench.trees import generate

_REASON = None if torch.cuda.is_available() else "no CUDA device"
_REASON = _REASON or _artifact_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

UNEVEN = {"name": "uneven", "fanout": [[2, 4], [1, 3]], "lengths": [[100, 300], [16, 200], [17, 90]], "seed": 3}
PRUNED = {"name": "pruned", "fanout": [[2, 4], [2, 3], [2, 3]], "lengths": [[64, 200], [16, 80], [16, 80], [1, 40]],
          "prune": 0.4, "seed": 5}
REGULAR = {"name": "regular", "fanout": [4, 4], "lengths": [512, 64, 33], "seed": 1}

CASES = [
    Case.for_tree("g", generate(UNEVEN), 32, 32, 128, dtype="float16"),
    Case.for_tree("g", generate(PRUNED), 32, 8, 128, dtype="bfloat16"),
    Case.for_tree("g", generate(REGULAR), 32, 32, 128, dtype="float16"),
    Case("g", 8, 32, 8, 128, ((1, 256), (4, 128)), 64, dtype="float16"),
]
NEW = ["fasttree", "deft", "sglang_triton", "flashinfer_decode"]
OTHERS = ["sdpa_naive", "flashinfer_cascade"]  # ours have their own GPU tests (and need the TK build)


def expected_unavailable(impl: str, case: Case) -> str | None:
    if impl == "deft" and case.dtype != "float16":
        return "float16"
    if impl == "flashinfer_cascade" and case.tree is not None and case.tree.name == "pruned":
        return "different depths"
    if impl.startswith("flashinfer") and (r := flashinfer_dtype_reason(case)):
        return r.split(":")[0]
    return None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label())
def test_tree_peers_match_reference_eager_and_graph(case):
    from tkprefix.bench.runner import run_case
    from tkprefix.bench.timing import L2Flusher

    rows = run_case(case, NEW + OTHERS, [False, True], L2Flusher(), {"copy_bw_bytes_per_s": 4e12,
                    "gemm_flops_per_s": 8e14}, reps=5, min_reps=3, time_budget_s=0.2)
    for r in rows:
        print(f"{r['impl']:18s} graph={r['graph']} {r['status'][:150]:150s} rel_err={r['rel_err']} "
              f"us={r['median_us']} sharing={r.get('sharing')} ideal={r.get('sharing_ideal')} {r['note']}")
    for r in rows:
        want = expected_unavailable(r["impl"], case)
        if want:
            assert r["status"].startswith("unavailable") and want in r["status"], r
        else:
            assert r["status"] == "ok", (r["impl"], r["graph"], r["status"])
            assert r["rel_err"] < 1e-2
