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


def test_ci_runs_the_readme_commands_verbatim():
    """.ci/run takes its commands from the README's commands block, so the two cannot drift apart."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["bash", str(root / ".ci" / "run"), "--list"], capture_output=True, text=True, check=True)
    commands = [line.split("#")[0].strip() for line in listed.stdout.splitlines()]
    assert commands == ["bash scripts/setup.sh", 'pip install -e ".[dev,pipeline]"', "snakemake --cores 2",
                        "python -m pytest"]
    readme = (root / "README.md").read_text()
    assert all(line in readme for line in listed.stdout.splitlines())
