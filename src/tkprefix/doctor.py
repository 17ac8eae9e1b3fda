"""`tkprefix doctor`: diagnose the environment for the known failure modes of building and running the TK kernels.

Each check returns a `Check(name, status, detail, fix)` with status "ok", "warn" or "fail"; the fix says what to do.
The checks cover what broke while building Hydragen on ThunderKittens (see the paper's build-failures section):

- gpu        an sm_90 (Hopper) GPU is visible (TK's kernels use TMA + wgmma: sm_90a only)
- torch      PyTorch is a CUDA build, and which CUDA it was built with
- nvcc       nvcc is found and its major version matches torch's CUDA (a mismatch breaks the extension build)
- tk         $THUNDERKITTENS_ROOT points at a TK checkout with include/kittens.cuh
- tk_api     that checkout has the scoped `warp::` / `warpgroup::` API (older TK fails with template errors)
- tk_cuda    a TK that uses cudaLaunchAttributePreferredClusterDimension (CUDA 12.8+) unguarded, with CUDA < 12.8
             headers (the Docker image's 12.6): needs docker/patches/tk-0b55588d-cuda-lt-12.8.patch
- compiler   a host C++ compiler new enough for C++20 (g++ >= 11)
- arch       TORCH_CUDA_ARCH_LIST is 9.0a, and no `-arch=sm_90a` in NVCC flags (CUDA 13's ptxas rejects wgmma in
             the compute_90 PTX that -arch embeds; use -gencode arch=compute_90a,code=sm_90a)
- libcuda    the driver library that `-lcuda` links (TK calls cuGetErrorString and the TMA driver API)

Usage: `tkprefix doctor [--json] [--no-gpu]`; exit status 0 when nothing fails (warnings allowed), 1 otherwise.
`--no-gpu` leaves out the checks that need a GPU and its driver (gpu, libcuda): the Docker image build runs it.
Example:
    >>> from tkprefix import doctor
    >>> checks = doctor.run_checks()          # doctest: +SKIP
    >>> [c.name for c in checks][:3]          # doctest: +SKIP
    ['gpu', 'torch', 'nvcc']
"""
from __future__ import annotations

import argparse
import ctypes.util
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TK_PINNED_COMMIT = "0b55588d2769dde0c7a9a606ffc015b0ca7a9551"
TK_CUDA_ATTR = "cudaLaunchAttributePreferredClusterDimension"   # first in CUDA 12.8 (CUDART_VERSION 12080)
TK_CUDA_PATCH = "docker/patches/tk-0b55588d-cuda-lt-12.8.patch"
MIN_GCC_MAJOR = 11
STATUSES = ("ok", "warn", "fail")


@dataclasses.dataclass
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Check.status must be one of {STATUSES}, got {self.status!r}")


# ------------------------------------------------------------------------------------------- probes (monkeypatched)
def _run(cmd: list[str], timeout: float = 30.0) -> tuple[int, str]:
    """(exit code, stdout+stderr) of a command; (127, message) when it cannot be started."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return 127, str(exc)
    return p.returncode, p.stdout + p.stderr


def _which(name: str) -> str | None:
    return shutil.which(name)


def _torch_info() -> dict:
    """What torch reports: version, CUDA it was built with, GPUs it sees (name, capability)."""
    try:
        import torch
    except ImportError as exc:
        return {"error": f"torch cannot be imported: {exc}"}
    info = {"version": torch.__version__, "cuda": torch.version.cuda, "gpus": []}
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                info["gpus"].append((torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i)))
    except RuntimeError as exc:  # driver too old for this torch, no device node, ...
        info["cuda_error"] = str(exc)
    return info


def _find_library(name: str) -> str | None:
    return ctypes.util.find_library(name)


# ------------------------------------------------------------------------------------------------------- the checks
def check_gpu(torch_info: dict) -> Check:
    gpus = torch_info.get("gpus") or []
    if not gpus:
        code, out = _run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"])
        if code == 0:
            for line in out.strip().splitlines():
                name, _, cap = line.rpartition(",")
                try:
                    major, minor = (int(x) for x in cap.strip().split("."))
                except ValueError:
                    continue
                gpus.append((name.strip(), (major, minor)))
    if not gpus:
        why = torch_info.get("cuda_error") or "no NVIDIA GPU visible (torch sees none and nvidia-smi fails)"
        return Check("gpu", "fail", why, "run on a Hopper GPU (sm_90: H100, H200), or build the paper from the recorded run: "
                     "snakemake --cores 2 --config mode=replay")
    hopper = [g for g in gpus if tuple(g[1]) == (9, 0)]
    listing = ", ".join(f"{n} (sm_{c[0]}{c[1]})" for n, c in gpus)
    if not hopper:
        return Check("gpu", "fail", f"no sm_90 GPU: {listing}", "the TK kernels need Hopper (H100/H200, sm_90a); "
                     "use backend='torch' elsewhere, or replay mode for the paper")
    return Check("gpu", "ok", listing)


def check_torch(torch_info: dict) -> Check:
    if "error" in torch_info:
        return Check("torch", "fail", torch_info["error"], "pip install torch (a CUDA build, e.g. the cu124 wheels)")
    if not torch_info.get("cuda"):
        return Check("torch", "fail", f"torch {torch_info['version']} is a CPU-only build",
                     "install a CUDA build of torch, e.g. pip install torch==2.5.1 "
                     "--index-url https://download.pytorch.org/whl/cu124")
    return Check("torch", "ok", f"torch {torch_info['version']}, built with CUDA {torch_info['cuda']}")


def _nvcc_path() -> str | None:
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if root and Path(root, "bin", "nvcc").is_file():
            return str(Path(root, "bin", "nvcc"))
    return _which("nvcc") or (str(Path("/usr/local/cuda/bin/nvcc")) if Path("/usr/local/cuda/bin/nvcc").is_file()
                              else None)


def check_nvcc(torch_info: dict) -> Check:
    nvcc = _nvcc_path()
    if nvcc is None:
        return Check("nvcc", "fail", "nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)",
                     "install the CUDA toolkit (12.4+; the Docker image has 12.6) and set CUDA_HOME")
    code, out = _run([nvcc, "--version"])
    m = re.search(r"release (\d+)\.(\d+)", out)
    if code != 0 or not m:
        return Check("nvcc", "fail", f"{nvcc} --version failed: {out.strip()[:200]}", "reinstall the CUDA toolkit")
    nv = (int(m.group(1)), int(m.group(2)))
    detail = f"{nvcc}: CUDA {nv[0]}.{nv[1]}"
    if nv < (12, 3):
        return Check("nvcc", "fail", detail + " (too old for TK's Hopper code)", "install CUDA 12.4 or newer")
    tcuda = torch_info.get("cuda")
    if tcuda:
        tmajor = int(str(tcuda).split(".")[0])
        if tmajor != nv[0]:
            return Check("nvcc", "fail", f"{detail}, but torch was built with CUDA {tcuda}",
                         f"use an nvcc {tmajor}.x toolkit (CUDA_HOME) or a torch wheel built for CUDA {nv[0]}.x")
        if str(tcuda) != f"{nv[0]}.{nv[1]}":
            return Check("nvcc", "ok", f"{detail}; torch CUDA {tcuda} (same major: a minor mismatch only warns)")
    return Check("nvcc", "ok", detail)


def check_tk() -> Check:
    root = os.environ.get("THUNDERKITTENS_ROOT", "")
    if not root:
        return Check("tk", "fail", "THUNDERKITTENS_ROOT is not set",
                     f"git clone https://github.com/HazyResearch/ThunderKittens && git -C ThunderKittens checkout "
                     f"{TK_PINNED_COMMIT} && export THUNDERKITTENS_ROOT=$PWD/ThunderKittens")
    if not Path(root, "include", "kittens.cuh").is_file():
        return Check("tk", "fail", f"THUNDERKITTENS_ROOT={root} has no include/kittens.cuh",
                     "point THUNDERKITTENS_ROOT at the top of a ThunderKittens checkout")
    code, out = _run(["git", "-C", root, "rev-parse", "--show-toplevel", "HEAD"])
    lines = out.strip().splitlines() if code == 0 else []
    # Only a checkout whose top level is root itself says which TK commit it is (not an enclosing repository).
    own = len(lines) == 2 and Path(lines[0]).resolve() == Path(root).resolve()
    commit = lines[1].strip() if own else ""
    if commit and commit != TK_PINNED_COMMIT:
        return Check("tk", "warn", f"{root} at commit {commit[:12]}, not the pinned {TK_PINNED_COMMIT[:12]}",
                     f"git -C {root} checkout {TK_PINNED_COMMIT}")
    return Check("tk", "ok", f"{root}" + (f" at {commit[:12]}" if commit else " (not a git checkout: commit unknown)"))


def check_tk_api() -> Check:
    root = os.environ.get("THUNDERKITTENS_ROOT", "")
    group = Path(root, "include", "ops", "group", "group.cuh")
    if not root or not Path(root, "include").is_dir():
        return Check("tk_api", "fail", "no TK include/ directory to inspect (see the tk check)", "fix the tk check first")
    if group.is_file() and re.search(r"using\s+warp\s*=\s*group\s*<\s*1\s*>", group.read_text(errors="replace")):
        return Check("tk_api", "ok", "scoped API: `using warp = group<1>` in include/ops/group/group.cuh")
    return Check("tk_api", "fail", "TK predates the warp::/warpgroup:: refactor (no `using warp = group<1>`)",
                 f"git -C {root} checkout {TK_PINNED_COMMIT} (kernels written for the old unscoped API, e.g. via "
                 "TK's old setup.py, do not compile against the pinned headers)")


def _cudart_version(nvcc: str | None) -> int | None:
    """CUDART_VERSION (e.g. 12060) of the CUDA headers nvcc compiles against, else its release (12.6 -> 12060)."""
    roots = [Path(nvcc).resolve().parent.parent] if nvcc else []
    roots += [Path(r) for r in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")) if r]
    for root in roots:
        for inc in (root / "include", root / "targets" / "x86_64-linux" / "include"):
            header = inc / "cuda_runtime_api.h"
            if header.is_file():
                m = re.search(r"#define\s+CUDART_VERSION\s+(\d+)", header.read_text(errors="replace"))
                if m:
                    return int(m.group(1))
    if nvcc:
        code, out = _run([nvcc, "--version"])
        m = re.search(r"release (\d+)\.(\d+)", out)
        if code == 0 and m:
            return int(m.group(1)) * 1000 + int(m.group(2)) * 10
    return None


def _unguarded_lines(text: str, name: str) -> list[int]:
    """Line numbers where `name` is used outside an `#if CUDART_VERSION >= N` (N >= 12080) block."""
    stack: list[bool] = []   # per open #if: does this branch guard for CUDA >= 12.8?
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        d = line.strip()
        if d.startswith("#if"):
            m = re.match(r"#if\s+CUDART_VERSION\s*>=\s*(\d+)", d)
            stack.append(bool(m) and int(m.group(1)) >= 12080)
        elif d.startswith(("#else", "#elif")) and stack:
            stack[-1] = False
        elif d.startswith("#endif") and stack:
            stack.pop()
        elif name in line and not line.lstrip().startswith("//") and not any(stack):
            found.append(i)
    return found


def check_tk_cuda() -> Check:
    root = os.environ.get("THUNDERKITTENS_ROOT", "")
    util = Path(root, "include", "common", "util.cuh")
    if not root or not util.is_file():
        return Check("tk_cuda", "fail", "no TK include/common/util.cuh to inspect (see the tk check)",
                     "fix the tk check first")
    lines = _unguarded_lines(util.read_text(errors="replace"), TK_CUDA_ATTR)
    cudart = _cudart_version(_nvcc_path())
    shown = f"CUDA {cudart // 1000}.{cudart % 1000 // 10}" if cudart else "CUDA version unknown"
    if not lines:
        return Check("tk_cuda", "ok", f"TK's util.cuh has no unguarded {TK_CUDA_ATTR} ({shown})")
    where = f"{util}:{lines[0]} uses {TK_CUDA_ATTR} (CUDA 12.8+) unguarded"
    patch = Path(__file__).resolve().parents[2] / TK_CUDA_PATCH
    fix = (f"git -C {root} apply {patch if patch.is_file() else TK_CUDA_PATCH} (guards TK's cluster LaunchConfig "
           "with #if CUDART_VERSION >= 12080; the Docker image applies it), or use CUDA >= 12.8")
    if cudart is None:
        return Check("tk_cuda", "warn", f"{where}; no CUDA headers or nvcc found to tell the CUDA version", fix)
    if cudart < 12080:
        return Check("tk_cuda", "fail", f"{where}, and the headers are {shown}: every .cu that includes "
                     f"kittens.cuh stops with 'identifier \"{TK_CUDA_ATTR}\" is undefined'", fix)
    return Check("tk_cuda", "ok", f"{shown} defines {TK_CUDA_ATTR} (TK unpatched, fine from 12.8 on)")


def check_compiler() -> Check:
    cxx = os.environ.get("CXX") or _which("c++") or _which("g++")
    if not cxx:
        return Check("compiler", "fail", "no host C++ compiler (CXX, c++, g++)", "apt-get install g++ (11 or newer)")
    code, out = _run([cxx, "--version"])
    if code != 0:
        return Check("compiler", "fail", f"{cxx} --version failed", "install g++ 11 or newer and set CXX")
    first = out.strip().splitlines()[0] if out.strip() else cxx
    m = re.search(r"\b(\d+)\.(\d+)(?:\.\d+)?\b", first)
    if "clang" in first.lower() or not m:
        return Check("compiler", "warn", f"{first} (only g++ >= {MIN_GCC_MAJOR} is tested)",
                     f"install g++ {MIN_GCC_MAJOR}+ and export CXX=g++")
    if int(m.group(1)) < MIN_GCC_MAJOR:
        return Check("compiler", "fail", f"{first}: too old for -std=c++20",
                     f"install g++ {MIN_GCC_MAJOR} or newer and export CXX=g++-{MIN_GCC_MAJOR}")
    return Check("compiler", "ok", first)


def check_arch() -> Check:
    flags = " ".join(os.environ.get(v, "") for v in ("NVCC_APPEND_FLAGS", "NVCC_PREPEND_FLAGS", "NVCC_FLAGS"))
    if re.search(r"-arch[= ]sm_90a?\b", flags):
        return Check("arch", "fail", f"NVCC flags contain -arch=sm_90a: {flags.strip()}",
                     "remove it and use -gencode arch=compute_90a,code=sm_90a (CUDA 13's ptxas rejects wgmma in "
                     "the compute_90 PTX that -arch also embeds)")
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if arch is None:
        return Check("arch", "warn", "TORCH_CUDA_ARCH_LIST is not set (the build sets 9.0a itself)",
                     "export TORCH_CUDA_ARCH_LIST=9.0a for other torch extensions built here")
    if "9.0a" not in arch.replace(";", " ").split():
        return Check("arch", "fail", f"TORCH_CUDA_ARCH_LIST={arch!r} lacks 9.0a (wgmma/TMA need sm_90a)",
                     "export TORCH_CUDA_ARCH_LIST=9.0a")
    return Check("arch", "ok", f"TORCH_CUDA_ARCH_LIST={arch}")


def check_libcuda() -> Check:
    lib = _find_library("cuda")
    if lib is None:
        return Check("libcuda", "fail", "libcuda (the NVIDIA driver library) not found",
                     "install the NVIDIA driver (in Docker: run with --gpus all); the extension links -lcuda for "
                     "cuGetErrorString and TMA descriptors")
    return Check("libcuda", "ok", lib)


def run_checks(gpu: bool = True) -> list[Check]:
    """Every check; gpu=False leaves out those that need a GPU and its driver (gpu, libcuda)."""
    torch_info = _torch_info()
    checks = [check_gpu(torch_info)] if gpu else []
    checks += [check_torch(torch_info), check_nvcc(torch_info), check_tk(), check_tk_api(), check_tk_cuda(),
               check_compiler(), check_arch()]
    return checks + ([check_libcuda()] if gpu else [])


def format_report(checks: list[Check]) -> str:
    mark = {"ok": "[ OK ]", "warn": "[WARN]", "fail": "[FAIL]"}
    lines = []
    for c in checks:
        lines.append(f"{mark[c.status]} {c.name:9s} {c.detail}")
        if c.status != "ok" and c.fix:
            lines.append(f"       {'':9s} fix: {c.fix}")
    n_fail = sum(c.status == "fail" for c in checks)
    n_warn = sum(c.status == "warn" for c in checks)
    verdict = ("ready to build and run the TK kernels" if n_fail == 0 else
               "the TK kernels cannot run here (backend='torch' and replay mode still work)")
    lines.append(f"{n_fail} failed, {n_warn} warnings: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tkprefix doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--no-gpu", action="store_true",
                        help="leave out the checks that need a GPU and its driver (gpu, libcuda), e.g. at image build")
    args = parser.parse_args(argv)
    checks = run_checks(gpu=not args.no_gpu)
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
    else:
        print(format_report(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
