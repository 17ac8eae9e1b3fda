"""`tkprefix doctor` on a CPU machine: every check is driven through its probes with monkeypatching."""
from __future__ import annotations

import json

import pytest

from tkprefix import doctor

H100 = {"version": "2.5.1+cu124", "cuda": "12.4", "gpus": [("NVIDIA H100 80GB HBM3", (9, 0))]}


def fake_run(outputs: dict[str, tuple[int, str]]):
    """A _run replacement answering by the command's first word (or its basename)."""
    def run(cmd, timeout=30.0):
        for key, answer in outputs.items():
            if cmd[0] == key or cmd[0].endswith("/" + key):
                return answer
        return 127, f"{cmd[0]}: not found"
    return run


@pytest.fixture
def tk_root(tmp_path):
    """A minimal TK tree with the scoped API."""
    (tmp_path / "include" / "ops" / "group").mkdir(parents=True)
    (tmp_path / "include" / "kittens.cuh").write_text("// kittens\n")
    (tmp_path / "include" / "ops" / "group" / "group.cuh").write_text("using warp = group<1>;\n")
    return tmp_path


def test_gpu_ok_on_h100():
    c = doctor.check_gpu(H100)
    assert c.status == "ok" and "H100" in c.detail and "sm_90" in c.detail


def test_gpu_fails_on_ampere_and_names_the_fix(monkeypatch):
    c = doctor.check_gpu({"gpus": [("NVIDIA A100", (8, 0))], "cuda": "12.4", "version": "2.5.1"})
    assert c.status == "fail" and "sm_80" in c.detail and "Hopper" in c.fix


def test_gpu_falls_back_to_nvidia_smi(monkeypatch):
    monkeypatch.setattr(doctor, "_run", fake_run({"nvidia-smi": (0, "NVIDIA H100 PCIe, 9.0\n")}))
    c = doctor.check_gpu({"gpus": [], "cuda": None, "version": "2.13.0+cpu"})
    assert c.status == "ok" and "H100 PCIe" in c.detail


def test_gpu_absent(monkeypatch):
    monkeypatch.setattr(doctor, "_run", fake_run({}))
    c = doctor.check_gpu({"gpus": [], "cuda": None, "version": "2.13.0+cpu"})
    assert c.status == "fail" and "replay" in c.fix


def test_torch_cpu_build_fails():
    c = doctor.check_torch({"version": "2.13.0+cpu", "cuda": None, "gpus": []})
    assert c.status == "fail" and "CPU-only" in c.detail and "cu124" in c.fix


def test_torch_missing():
    c = doctor.check_torch({"error": "torch cannot be imported: No module named 'torch'"})
    assert c.status == "fail" and "pip install torch" in c.fix


@pytest.mark.parametrize("release, torch_cuda, status", [
    ("12.6", "12.4", "ok"),     # Docker image: same major, minor mismatch only warns in torch
    ("13.0", "13.0", "ok"),
    ("13.0", "12.4", "fail"),   # major mismatch breaks the extension build
    ("12.1", "12.1", "fail"),   # too old for TK's Hopper code
])
def test_nvcc_versions(monkeypatch, release, torch_cuda, status):
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(doctor, "_which", lambda name: "/opt/cuda/bin/nvcc" if name == "nvcc" else None)
    monkeypatch.setattr(doctor, "_run", fake_run({"nvcc": (0, f"Cuda compilation tools, release {release}, V{release}.1")}))
    c = doctor.check_nvcc({"cuda": torch_cuda, "version": "x", "gpus": []})
    assert c.status == status, c
    if status == "fail":
        assert c.fix


def test_nvcc_missing(monkeypatch):
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(doctor, "_which", lambda name: None)
    monkeypatch.setattr(doctor.Path, "is_file", lambda self: False)
    c = doctor.check_nvcc({"cuda": "12.4"})
    assert c.status == "fail" and "CUDA_HOME" in c.fix


def test_tk_unset(monkeypatch):
    monkeypatch.delenv("THUNDERKITTENS_ROOT", raising=False)
    c = doctor.check_tk()
    assert c.status == "fail" and doctor.TK_PINNED_COMMIT in c.fix


def test_tk_wrong_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("THUNDERKITTENS_ROOT", str(tmp_path))
    c = doctor.check_tk()
    assert c.status == "fail" and "kittens.cuh" in c.detail


def test_tk_pinned_and_unpinned(monkeypatch, tk_root):
    monkeypatch.setenv("THUNDERKITTENS_ROOT", str(tk_root))
    monkeypatch.setattr(doctor, "_run", fake_run({"git": (0, f"{tk_root}\n{doctor.TK_PINNED_COMMIT}\n")}))
    assert doctor.check_tk().status == "ok"
    monkeypatch.setattr(doctor, "_run", fake_run({"git": (0, f"{tk_root}\n{'a' * 40}\n")}))
    c = doctor.check_tk()
    assert c.status == "warn" and "checkout" in c.fix


def test_tk_inside_another_repository_is_not_taken_for_its_commit(monkeypatch, tk_root):
    monkeypatch.setenv("THUNDERKITTENS_ROOT", str(tk_root))
    monkeypatch.setattr(doctor, "_run", fake_run({"git": (0, f"{tk_root.parent}\n{'b' * 40}\n")}))
    c = doctor.check_tk()
    assert c.status == "ok" and "commit unknown" in c.detail


def test_tk_api_scoped_ok_and_old_api_fails(monkeypatch, tk_root):
    monkeypatch.setenv("THUNDERKITTENS_ROOT", str(tk_root))
    assert doctor.check_tk_api().status == "ok"
    (tk_root / "include" / "ops" / "group" / "group.cuh").unlink()
    (tk_root / "include" / "ops" / "warp").mkdir()
    c = doctor.check_tk_api()
    assert c.status == "fail" and "warp::" in c.detail and doctor.TK_PINNED_COMMIT in c.fix


@pytest.mark.parametrize("version_line, status", [
    ("g++ (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0", "ok"),
    ("c++ (Debian 12.2.0-14) 12.2.0", "ok"),
    ("g++ (GCC) 9.4.0", "fail"),
    ("clang version 17.0.6", "warn"),
])
def test_compiler(monkeypatch, version_line, status):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(doctor, "_which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(doctor, "_run", fake_run({"c++": (0, version_line + "\n")}))
    assert doctor.check_compiler().status == status


def test_compiler_missing(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(doctor, "_which", lambda name: None)
    c = doctor.check_compiler()
    assert c.status == "fail" and "g++" in c.fix


def test_arch_flags(monkeypatch):
    for v in ("NVCC_APPEND_FLAGS", "NVCC_PREPEND_FLAGS", "NVCC_FLAGS", "TORCH_CUDA_ARCH_LIST"):
        monkeypatch.delenv(v, raising=False)
    assert doctor.check_arch().status == "warn"
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0a")
    assert doctor.check_arch().status == "ok"
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    assert doctor.check_arch().status == "fail"
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0a")
    monkeypatch.setenv("NVCC_APPEND_FLAGS", "-arch=sm_90a")
    c = doctor.check_arch()
    assert c.status == "fail" and "-gencode arch=compute_90a,code=sm_90a" in c.fix


def test_libcuda(monkeypatch):
    monkeypatch.setattr(doctor, "_find_library", lambda name: None)
    assert doctor.check_libcuda().status == "fail"
    monkeypatch.setattr(doctor, "_find_library", lambda name: "libcuda.so.1")
    assert doctor.check_libcuda().status == "ok"


def test_check_rejects_unknown_status():
    with pytest.raises(ValueError, match="status"):
        doctor.Check("x", "maybe", "")


def test_main_exit_code_and_report(monkeypatch, capsys):
    ok = doctor.Check("gpu", "ok", "H100")
    bad = doctor.Check("tk", "fail", "THUNDERKITTENS_ROOT is not set", "export THUNDERKITTENS_ROOT=...")
    warn = doctor.Check("arch", "warn", "unset", "export TORCH_CUDA_ARCH_LIST=9.0a")
    monkeypatch.setattr(doctor, "run_checks", lambda gpu=True: [ok, warn])
    assert doctor.main([]) == 0
    monkeypatch.setattr(doctor, "run_checks", lambda gpu=True: [ok, bad, warn])
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] tk" in out and "fix: export THUNDERKITTENS_ROOT" in out and "1 failed, 1 warnings" in out
    assert doctor.main(["--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["gpu", "tk", "arch"]


def test_run_checks_on_this_machine_does_not_raise():
    checks = doctor.run_checks()
    assert [c.name for c in checks] == ["gpu", "torch", "nvcc", "tk", "tk_api", "tk_cuda", "compiler", "arch", "libcuda"]
    assert [c.name for c in doctor.run_checks(gpu=False)] == ["torch", "nvcc", "tk", "tk_api", "tk_cuda", "compiler",
                                                              "arch"]


def test_no_gpu_flag_leaves_out_the_gpu_checks(monkeypatch):
    seen = []
    monkeypatch.setattr(doctor, "run_checks", lambda gpu=True: seen.append(gpu) or [doctor.Check("tk", "ok", "")])
    assert doctor.main(["--no-gpu"]) == 0 and seen == [False]


# ------------------------------------------------------------------------------ tk_cuda: TK 0b55588d vs CUDA < 12.8
# The lines of TK's include/common/util.cuh (pinned commit) that matter, unpatched and as the patch leaves them.
UTIL_UNPATCHED = """struct LaunchConfig {
    __host__ inline LaunchConfig(dim3 grid, dim3 block) noexcept requires(!CLUSTER) { }

    __host__ inline LaunchConfig(dim3 grid, dim3 block, dim3 cluster_preferred) noexcept requires(CLUSTER) {
        attributes[0].id = cudaLaunchAttributePreferredClusterDimension;
        attributes[1].id = cudaLaunchAttributeClusterDimension;
    }
};
"""


def patched(text: str) -> str:
    """util.cuh as docker/patches/tk-0b55588d-cuda-lt-12.8.patch leaves it: the cluster constructor guarded."""
    start = "    __host__ inline LaunchConfig(dim3 grid, dim3 block, dim3 cluster_preferred)"
    end = "        attributes[1].id = cudaLaunchAttributeClusterDimension;\n    }\n"
    i, j = text.index(start), text.index(end) + len(end)
    return text[:i] + "#if CUDART_VERSION >= 12080\n" + text[i:j] + "#endif  // CUDART_VERSION >= 12080\n" + text[j:]


@pytest.fixture
def tk_with_util(tk_root, tmp_path_factory, monkeypatch):
    """TK tree + a CUDA toolkit (nvcc + cuda_runtime_api.h) in tmp_path; returns (write_util, set_cudart)."""
    monkeypatch.setenv("THUNDERKITTENS_ROOT", str(tk_root))
    (tk_root / "include" / "common").mkdir()
    cuda = tmp_path_factory.mktemp("cuda")
    (cuda / "bin").mkdir()
    (cuda / "include").mkdir()
    (cuda / "bin" / "nvcc").write_text("#!/bin/sh\n")
    monkeypatch.setenv("CUDA_HOME", str(cuda))
    monkeypatch.delenv("CUDA_PATH", raising=False)

    def write_util(text):
        (tk_root / "include" / "common" / "util.cuh").write_text(text)

    def set_cudart(version):
        (cuda / "include" / "cuda_runtime_api.h").write_text(f"#define CUDART_VERSION  {version}\n")

    return write_util, set_cudart


def test_tk_cuda_unpatched_tk_with_cuda_12_6_fails_naming_the_patch(tk_with_util):
    write_util, set_cudart = tk_with_util
    write_util(UTIL_UNPATCHED)
    set_cudart(12060)
    c = doctor.check_tk_cuda()
    assert c.status == "fail", c
    assert "util.cuh:5" in c.detail and "CUDA 12.6" in c.detail and "is undefined" in c.detail
    assert "git -C" in c.fix and "tk-0b55588d-cuda-lt-12.8.patch" in c.fix


def test_tk_cuda_patched_tk_with_cuda_12_6_is_ok(tk_with_util):
    write_util, set_cudart = tk_with_util
    write_util(patched(UTIL_UNPATCHED))
    set_cudart(12060)
    assert doctor.check_tk_cuda().status == "ok"


def test_tk_cuda_unpatched_tk_with_cuda_12_8_or_13_is_ok(tk_with_util):
    write_util, set_cudart = tk_with_util
    write_util(UTIL_UNPATCHED)
    for v in (12080, 13000):
        set_cudart(v)
        assert doctor.check_tk_cuda().status == "ok", v


def test_tk_cuda_guard_for_an_older_version_or_the_else_branch_does_not_count(tk_with_util):
    write_util, set_cudart = tk_with_util
    set_cudart(12060)
    write_util(patched(UTIL_UNPATCHED).replace("CUDART_VERSION >= 12080", "CUDART_VERSION >= 12000"))
    assert doctor.check_tk_cuda().status == "fail"
    body = "        attributes[0].id = cudaLaunchAttributePreferredClusterDimension;\n"
    write_util("#if CUDART_VERSION >= 12080\n#else\n" + body + "#endif\n")
    assert doctor.check_tk_cuda().status == "fail"


def test_tk_cuda_version_from_nvcc_when_no_headers(tk_with_util, monkeypatch):
    write_util, _ = tk_with_util
    write_util(UTIL_UNPATCHED)
    monkeypatch.setattr(doctor, "_run", fake_run({"nvcc": (0, "Cuda compilation tools, release 12.6, V12.6.85")}))
    assert doctor.check_tk_cuda().status == "fail"
    monkeypatch.setattr(doctor, "_run", fake_run({}))
    assert doctor.check_tk_cuda().status == "warn"


def test_tk_cuda_patch_file_matches_the_fixture():
    """The repository's patch guards exactly the constructor the fixture models (its added lines)."""
    patch = (doctor.Path(doctor.__file__).resolve().parents[2] / doctor.TK_CUDA_PATCH).read_text()
    added = [line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert "#if CUDART_VERSION >= 12080" in added and "#endif  // CUDART_VERSION >= 12080" in added
    context = [line[1:] for line in patch.splitlines() if line.startswith(" ")]
    assert any("cudaLaunchAttributePreferredClusterDimension" in line for line in context)
