"""The kernels loaded from prebuilt launcher objects (TKPREFIX_PREBUILT_OBJECTS, e.g. the Docker image's CUDA 12.6
build from scripts/ci_image_stack.sh) are the ones the GPU tests run: this checks the loaded module is that build.

Run on the GPU machine:  TKPREFIX_PREBUILT_OBJECTS=build/cuda126 python -m pytest tests/gpu -q
(without the variable this test skips: the kernels were then compiled on that machine)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tkprefix import build

pytestmark = pytest.mark.gpu


def test_prebuilt_objects_are_what_runs(requires_tk):
    d = build.prebuilt_dir()
    if d is None:
        pytest.skip("TKPREFIX_PREBUILT_OBJECTS is not set: the kernels were compiled on this machine")
    ext = requires_tk
    assert "_prebuilt_" in ext.__name__, ext.__name__
    # The objects call the CUDA runtime of their major version (versioned symbols): the copy beside them, or one
    # with the same soname that torch already loaded (a CUDA 12 torch); never torch's libcudart.so.13.
    soname = next(d.glob("libcudart.so.*")).name
    mapped = sorted({line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                     if line.rstrip().endswith("/" + soname)})
    assert mapped, f"no {soname} is mapped: the prebuilt objects' CUDA runtime did not load"
    print(f"\n{soname} mapped from {mapped}")
    manifest = (d / "MANIFEST").read_text()
    print(f"\nprebuilt kernels from {d}:\n{manifest}")   # shown with -s: the toolchain that built them
    assert ext.has_hydragen_ops and ext.has_chunk_ops and ext.has_tree_ops
