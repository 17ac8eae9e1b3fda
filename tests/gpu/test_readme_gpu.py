"""Every ```python block of the README runs as written on a Hopper GPU, where backend="auto" must pick the TK
kernels, and their output must match the torch backend on the same inputs.

Run on the GPU machine: python -m pytest tests/gpu/test_readme_gpu.py -q"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readme_examples import python_blocks, rel_err, run_block  # noqa: E402

pytestmark = pytest.mark.gpu
BLOCKS = python_blocks()


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_tk_on_the_gpu(index, monkeypatch, requires_tk):
    calls = run_block(BLOCKS[index], monkeypatch)
    assert calls, "the example calls no public op"
    for c in calls:
        assert c["backend"] == "tk", f"{c['op']}: backend auto chose {c['backend']} on the GPU"
        assert c["out"].is_cuda and c["out"].shape == c["ref"].shape
        assert rel_err(c["out"], c["ref"]) < 2e-2, c["op"]
