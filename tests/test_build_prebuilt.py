"""The loader's prebuilt-object mode on the CPU: which folders it accepts, and the link line it builds."""
from __future__ import annotations

import pytest

from tkprefix import build


def make_prebuilt(tmp_path, families=None, cudart="libcudart.so.12"):
    families = build.available_families() if families is None else families
    d = tmp_path / "cuda126"
    d.mkdir()
    lines = ["# test"]
    for f in families:
        (d / f).mkdir()
        for src in build.family_sources(f):
            (d / f / (src.stem + ".o")).write_bytes(b"\x7fELF" + src.stem.encode())
        lines.append(f"kernel_hash.{f} = {build.kernel_hash(f)}")
    (d / "MANIFEST").write_text("\n".join(lines) + "\n")
    if cudart:
        (d / cudart).write_bytes(b"\x7fELF")
    return d


def test_families_are_the_kernel_folders():
    assert build.available_families() == ["chunk_attn", "hydragen", "tree"]
    assert [s.name for s in build.family_sources("hydragen")] == ["decode.cu", "merge.cu", "prefix.cu"]
    assert build.family_flags(("chunk_attn", "hydragen")) == ["-DTKP_FAMILY_CHUNK_ATTN", "-DTKP_FAMILY_HYDRAGEN"]


def test_complete_prebuilt_folder_is_accepted(tmp_path):
    d = make_prebuilt(tmp_path)
    assert build.prebuilt_problem(d, ("chunk_attn", "hydragen")) is None


@pytest.mark.parametrize("breakage, words", [
    ("no_manifest", "no MANIFEST"),
    ("no_cudart", "no libcudart"),
    ("missing_object", "lacks ['hydragen/prefix.o']"),
    ("stale_hash", "built from other kernel sources"),
])
def test_broken_prebuilt_folder_is_refused_with_the_fix(tmp_path, breakage, words):
    d = make_prebuilt(tmp_path, cudart=None if breakage == "no_cudart" else "libcudart.so.12")
    if breakage == "no_manifest":
        (d / "MANIFEST").unlink()
    elif breakage == "missing_object":
        (d / "hydragen" / "prefix.o").unlink()
    elif breakage == "stale_hash":
        text = (d / "MANIFEST").read_text().replace(build.kernel_hash("hydragen"), "0" * 16)
        (d / "MANIFEST").write_text(text)
    problem = build.prebuilt_problem(d, ("chunk_attn", "hydragen"))
    assert problem is not None and words in problem and "ci_image_stack.sh kernels" in problem


def test_a_subset_of_families_needs_only_its_objects(tmp_path):
    d = make_prebuilt(tmp_path, families=["hydragen"])
    assert build.prebuilt_problem(d, ("hydragen",)) is None
    assert "chunk_attn" in build.prebuilt_problem(d, ("chunk_attn", "hydragen"))


def test_prebuilt_link_line_compiles_only_the_binding(tmp_path):
    d = make_prebuilt(tmp_path)
    kw = build.extension_args(("chunk_attn", "hydragen"), d)
    assert [p.rsplit("/", 1)[-1] for p in kw["sources"]] == ["binding.cpp"]
    assert kw["with_cuda"] is False and "_prebuilt_" in kw["name"]
    objs = [f for f in kw["extra_ldflags"] if f.endswith(".o")]
    assert sorted(o.rsplit("/", 2)[-2] + "/" + o.rsplit("/", 1)[-1] for o in objs) == [
        "chunk_attn/chunk_attn.o", "hydragen/decode.o", "hydragen/merge.o", "hydragen/prefix.o"]
    assert str(d / "libcudart.so.12") in kw["extra_ldflags"] and f"-Wl,-rpath,{d}" in kw["extra_ldflags"]
    assert "-lcuda" in kw["extra_ldflags"]
    assert "-DTKP_FAMILY_HYDRAGEN" in kw["extra_cflags"] and "-DTKP_FAMILY_CHUNK_ATTN" in kw["extra_cflags"]


def test_source_build_args_name_every_family(monkeypatch, tmp_path):
    monkeypatch.setenv("THUNDERKITTENS_ROOT", str(tmp_path))
    kw = build.extension_args(("hydragen",))
    assert [p.rsplit("/", 1)[-1] for p in kw["sources"]] == ["binding.cpp", "decode.cu", "merge.cu", "prefix.cu"]
    assert "-DTKP_FAMILY_HYDRAGEN" in kw["extra_cuda_cflags"] and "-DTKP_FAMILY_CHUNK_ATTN" not in kw["extra_cflags"]

