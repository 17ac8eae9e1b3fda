"""Every ```python block of the README runs as written on the CPU (backend auto -> torch) and calls the public API."""
import pytest
import torch

from readme_examples import OPS, python_blocks, run_block

BLOCKS = python_blocks()


def test_the_readme_has_examples_of_every_op():
    assert len(BLOCKS) >= 2
    assert all(any(f"tkprefix.{op}(" in b for b in BLOCKS) for op in OPS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_on_cpu(index, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, also on a GPU machine
    calls = run_block(BLOCKS[index], monkeypatch)
    assert calls, "the example calls no public op"
    for c in calls:
        assert c["backend"] == "torch" and c["out"].device.type == "cpu"
        assert torch.isfinite(c["out"]).all()
        assert torch.equal(c["out"], c["ref"])
