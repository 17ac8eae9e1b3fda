"""The README's ```python blocks, and a runner that executes them while recording every public op they call.

Used by tests/test_readme.py (CPU, torch backend) and tests/gpu/test_readme_gpu.py (Hopper GPU, tk backend)."""
from __future__ import annotations

import re
from pathlib import Path

import torch

import tkprefix
from tkprefix.backend import resolve_backend

README = Path(__file__).resolve().parents[1] / "README.md"
OPS = ("hydragen_attention_nopad", "chunk_attention", "tree_attention")


def python_blocks(path: Path = README) -> list[str]:
    """Every ```python fenced block of the README, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def run_block(code: str, monkeypatch) -> list[dict]:
    """exec one block in a fresh namespace; returns one record per public op call: name, the backend `auto` chose,
    the output, and the same call's output with backend="torch" (computed right after, on the same inputs)."""
    calls: list[dict] = []
    for name in OPS:
        fn = getattr(tkprefix, name)

        def spy(*args, _fn=fn, _name=name, **kwargs):
            out = _fn(*args, **kwargs)
            ref = _fn(*args, **{**kwargs, "backend": "torch"})
            calls.append({"op": _name, "backend": resolve_backend(kwargs.get("backend", "auto"), args[0]),
                          "out": out, "ref": ref})
            return out

        monkeypatch.setattr(tkprefix, name, spy)
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    return calls


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))
