"""Build and load the ThunderKittens extension from ``kernels/``.

The extension is compiled just in time with :func:`torch.utils.cpp_extension.load` (ninja, cached in a build
directory) the first time a ``backend="tk"`` op runs, or ahead of time with ``tkprefix build``. This is the one way
the kernels are loaded.

Sources: the one binding ``kernels/binding.cpp`` plus every ``*.cu`` of each kernel family folder
(``kernels/hydragen``, ``kernels/chunk_attn``, ...). Each family is its own translation unit(s), so ninja compiles
them in parallel; the binding compiles the sections of the families built (``-DTKP_FAMILY_<NAME>``).

Prebuilt kernels: with ``TKPREFIX_PREBUILT_OBJECTS=<dir>`` only the binding is compiled here, and it is linked with
the launcher objects in ``<dir>/<family>/*.o`` (compiled elsewhere, e.g. by the Docker image's CUDA 12.6 toolchain in
``scripts/ci_image_stack.sh``) and the CUDA runtime they were built for, ``<dir>/libcudart.so.<major>`` (found through
an rpath; its symbols are versioned, so it lives beside the CUDA runtime torch loads). No nvcc or TK is needed then.
``<dir>/MANIFEST`` records the hash of the kernel sources the objects came from; a mismatch is an error.

Environment:
    THUNDERKITTENS_ROOT   TK checkout (default: ``<repo>/third_party/ThunderKittens``), pinned commit
                          0b55588d2769dde0c7a9a606ffc015b0ca7a9551
    TKPREFIX_KERNELS_DIR  the ``kernels/`` folder (default: the repository's)
    TKPREFIX_BUILD_DIR    where the build is cached (default: ``<repo>/build/tk_ext``, else ``~/.cache/tkprefix``)
    TKPREFIX_FAMILIES     comma-separated families to compile (default: all folders with sources)
    TKPREFIX_PREBUILT_OBJECTS  folder of prebuilt launcher objects + their CUDA runtime (see above)

Example::

    >>> from tkprefix import build
    >>> ok, reason = build.is_available()
    >>> ext = build.load_extension() if ok else None      # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

TK_COMMIT = "0b55588d2769dde0c7a9a606ffc015b0ca7a9551"
_REPO = Path(__file__).resolve().parents[2]

CUDA_FLAGS = [
    "-std=c++20",
    "-O3",
    "--use_fast_math",
    "--expt-extended-lambda",
    "--expt-relaxed-constexpr",
    "-DKITTENS_HOPPER",
    # torch adds -gencode=arch=compute_90a,code=sm_90a from TORCH_CUDA_ARCH_LIST=9.0a (not -arch=sm_90a: under
    # CUDA 13, ptxas then also runs a plain sm_90 pass that rejects wgmma).
    "-Xptxas=-warn-spills",
]
CXX_FLAGS = ["-std=c++20", "-O2"]

_loaded: dict[tuple[str, ...], object] = {}


def kernels_dir() -> Path:
    return Path(os.environ.get("TKPREFIX_KERNELS_DIR", _REPO / "kernels"))


def tk_root() -> Path | None:
    env = os.environ.get("THUNDERKITTENS_ROOT")
    if env:
        return Path(env)
    default = _REPO / "third_party" / "ThunderKittens"
    return default if default.exists() else None


def _build_root() -> Path:
    env = os.environ.get("TKPREFIX_BUILD_DIR")
    if env:
        return Path(env)
    repo_build = _REPO / "build" / "tk_ext"
    try:
        repo_build.mkdir(parents=True, exist_ok=True)
        if os.access(repo_build, os.W_OK):
            return repo_build
    except OSError:
        pass
    return Path.home() / ".cache" / "tkprefix" / "tk_ext"


# Folders of kernels/ that are not kernel families of the extension: shared device helpers, and the bindings of
# peers' kernels (built on their own, at run time, by tkprefix.bench; never linked into tkprefix's extension).
NOT_FAMILIES = ("common", "peers")


def available_families() -> list[str]:
    kd = kernels_dir()
    if not kd.is_dir():
        return []
    return sorted(
        p.name
        for p in kd.iterdir()
        if p.is_dir() and p.name not in NOT_FAMILIES and (any(p.glob("*.cu")) or any(p.glob("*.cpp")))
    )


def _families(families) -> tuple[str, ...]:
    if families is None:
        env = os.environ.get("TKPREFIX_FAMILIES")
        families = [f for f in env.split(",") if f] if env else available_families()
    fams = tuple(sorted(set(families)))
    unknown = [f for f in fams if f not in available_families()]
    if unknown:
        raise ValueError(f"families: unknown kernel families {unknown}; have {available_families()}")
    return fams


def family_sources(family: str) -> list[Path]:
    """The kernel translation units of one family (its ``*.cu`` files)."""
    return sorted((kernels_dir() / family).glob("*.cu"))


def _sources(fams: tuple[str, ...]) -> list[str]:
    srcs = [kernels_dir() / "binding.cpp"]
    for f in fams:
        srcs += family_sources(f)
    return [str(s) for s in srcs]


def family_flags(fams: tuple[str, ...]) -> list[str]:
    """The defines that select the binding's sections: -DTKP_FAMILY_HYDRAGEN, -DTKP_FAMILY_CHUNK_ATTN, ..."""
    return [f"-DTKP_FAMILY_{f.upper()}" for f in fams]


def _hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p.is_file():
            h.update(p.relative_to(kernels_dir()).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _header_hash(fams: tuple[str, ...]) -> str:
    """Hash of every header the sources include: torch's JIT hashes only the listed sources, so a header edit
    would otherwise reuse a stale build."""
    kd = kernels_dir()
    headers = [kd / "launch.h", *sorted((kd / "common").glob("*"))]
    for f in fams:
        headers += sorted((kd / f).glob("*.h")) + sorted((kd / f).glob("*.cuh"))
    return _hash(headers)


def kernel_hash(family: str) -> str:
    """Hash of what one family's launcher objects are compiled from (its .cu files and every kernel header), as
    recorded in a prebuilt folder's MANIFEST."""
    kd = kernels_dir()
    files = [kd / "launch.h", *sorted((kd / "common").glob("*")), *sorted((kd / family).glob("*.h")),
             *sorted((kd / family).glob("*.cuh")), *family_sources(family)]
    return _hash(files)


def prebuilt_dir() -> Path | None:
    env = os.environ.get("TKPREFIX_PREBUILT_OBJECTS")
    return Path(env).resolve() if env else None


def _read_manifest(d: Path) -> dict[str, str]:
    out = {}
    for line in (d / "MANIFEST").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def prebuilt_problem(d: Path, fams: tuple[str, ...]) -> str | None:
    """None when ``d`` holds up-to-date launcher objects of every family in ``fams`` and their CUDA runtime, else
    what is wrong, with the fix."""
    redo = "rebuild it with `bash scripts/ci_image_stack.sh kernels`"
    if not (d / "MANIFEST").is_file():
        return f"TKPREFIX_PREBUILT_OBJECTS={d}: no MANIFEST there (not a prebuilt kernel folder); {redo}"
    man = _read_manifest(d)
    if not _cudart(d):
        return f"TKPREFIX_PREBUILT_OBJECTS={d}: no libcudart.so.<major> beside the objects; {redo}"
    for f in fams:
        want = [d / f / (src.stem + ".o") for src in family_sources(f)]
        missing = [str(o.relative_to(d)) for o in want if not o.is_file()]
        if missing:
            return f"TKPREFIX_PREBUILT_OBJECTS={d}: family {f!r} lacks {missing}; {redo}"
        if man.get(f"kernel_hash.{f}") != kernel_hash(f):
            return (f"TKPREFIX_PREBUILT_OBJECTS={d}: the {f} objects were built from other kernel sources "
                    f"(hash {man.get(f'kernel_hash.{f}')}, sources now {kernel_hash(f)}); {redo}")
    return None


def _cudart(d: Path) -> Path | None:
    libs = sorted(p for p in d.glob("libcudart.so.*") if re.fullmatch(r"libcudart\.so\.\d+", p.name))
    return libs[0] if libs else None


def check_prerequisites() -> str | None:
    """None when the extension can be built here, else the reason (with the fix)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "PyTorch is not installed: pip install torch (a CUDA build)"
    if torch.version.cuda is None:
        return (f"this PyTorch ({torch.__version__}) is a CPU build: install a CUDA build of torch "
                "(the TK extension needs CUDA); backend='torch' works everywhere")
    if not torch.cuda.is_available():
        return "no CUDA GPU visible: the TK kernels need a Hopper GPU (sm_90); use backend='torch'"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) != (9, 0):
        name = torch.cuda.get_device_name()
        return (f"GPU {name} is sm_{major}{minor}: the TK kernels use wgmma/TMA and need an sm_90 GPU (H100/H200); "
                "use backend='torch'")
    pre = prebuilt_dir()
    if pre is not None:
        return prebuilt_problem(pre, _families(None))
    from torch.utils.cpp_extension import CUDA_HOME

    nvcc = shutil.which("nvcc") or (CUDA_HOME and str(Path(CUDA_HOME) / "bin" / "nvcc"))
    if not nvcc or not Path(nvcc).exists():
        return "nvcc not found: install the CUDA toolkit and put nvcc on PATH (or set CUDA_HOME)"
    root = tk_root()
    if root is None or not (root / "include" / "kittens.cuh").is_file():
        return ("ThunderKittens not found: clone https://github.com/HazyResearch/ThunderKittens at commit "
                f"{TK_COMMIT} and export THUNDERKITTENS_ROOT=<that checkout>")
    if not (kernels_dir() / "binding.cpp").is_file():
        return f"kernel sources not found at {kernels_dir()}: set TKPREFIX_KERNELS_DIR to the repository's kernels/"
    return None


def is_available() -> tuple[bool, str]:
    """(True, "") when the TK backend can run here (H100 + CUDA torch + nvcc + TK), else (False, reason)."""
    reason = check_prerequisites()
    return (reason is None, reason or "")


def _cuda_lib_dirs() -> list[str]:
    from torch.utils.cpp_extension import CUDA_HOME

    dirs = [Path(CUDA_HOME) / d for d in ("lib64", "lib")] if CUDA_HOME else []
    return [f"-L{d}" for d in dirs if d.is_dir()]


def extension_args(fams: tuple[str, ...], prebuilt: Path | None = None) -> dict:
    """The keyword arguments of :func:`torch.utils.cpp_extension.load` for these families: the one place the
    extension's sources and flags are set (scripts/ci_image_stack.sh compiles the image's objects from them too).

    prebuilt: a folder of launcher objects (see the module doc); then only the binding is compiled and linked with
    them and their CUDA runtime.
    """
    name = "tkprefix_ext_" + "_".join(fams) if fams else "tkprefix_ext_none"
    if prebuilt is not None:
        objects = [prebuilt / f / (src.stem + ".o") for f in fams for src in family_sources(f)]
        # the objects are part of the hash, so rebuilt objects relink the module
        hdr = hashlib.sha256(b"".join(o.read_bytes() for o in objects)).hexdigest()[:16]
        return dict(name=name + "_prebuilt_" + hashlib.sha256(str(prebuilt).encode()).hexdigest()[:8],
                    sources=[str(kernels_dir() / "binding.cpp")], with_cuda=False,
                    extra_cflags=CXX_FLAGS + family_flags(fams) + [f"-DTKP_HEADER_HASH={hdr}"],
                    extra_include_paths=[str(kernels_dir())],
                    # the objects call the CUDA runtime they were built with, found through the rpath, and TK's
                    # host code calls the driver API (libcuda, looked for where torch's CUDA build would look)
                    extra_ldflags=[*map(str, objects), str(_cudart(prebuilt)), f"-Wl,-rpath,{prebuilt}",
                                   *_cuda_lib_dirs(), "-lcuda"])
    root = tk_root()
    hdr = _header_hash(fams)
    defines = family_flags(fams) + [f"-DTKP_HEADER_HASH={hdr}"]
    return dict(name=name, sources=_sources(fams),
                extra_cflags=CXX_FLAGS + defines, extra_cuda_cflags=CUDA_FLAGS + defines,
                extra_include_paths=[str(root / "include"), str(root / "prototype"), str(kernels_dir())],
                extra_ldflags=["-lcuda"])  # TK calls the driver API (cuTensorMapEncodeTiled, cuGetErrorString)


@contextlib.contextmanager
def _exclusive_build(build_dir: Path):
    """Hold an OS lock (flock) on build_dir for the build. torch's own lock (a `lock` file that exists while a process
    builds) outlives a process killed mid-build, and every later build then waits on it forever; under our flock no
    other tkprefix process is building there, so such a file is stale and is removed. The kernel drops the flock
    when its process dies, however it dies: a killed pipeline resumes without manual clean-up."""
    import fcntl

    with open(build_dir / ".tkprefix_build.flock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        stale = build_dir / "lock"
        if stale.exists():
            print(f"tkprefix build: removing {stale}, left by a build that was killed", file=sys.stderr)
            stale.unlink()
        yield


def load_extension(families=None, verbose: bool = False):
    """Build (first time) and import the extension; later calls return the cached module.

    families: kernel families to compile (default: all, or $TKPREFIX_FAMILIES). Raises RuntimeError naming the fix
    when TK, nvcc or an sm_90 GPU is missing.
    """
    fams = _families(families)
    if fams in _loaded:
        return _loaded[fams]
    reason = check_prerequisites()
    if reason is not None:
        raise RuntimeError(f"cannot build the tkprefix TK extension: {reason}")
    from torch.utils import cpp_extension

    os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0a"
    os.environ.setdefault("MAX_JOBS", str(max(1, os.cpu_count() or 1)))
    kw = extension_args(fams, prebuilt_dir())
    name = kw["name"]
    build_dir = _build_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        with _exclusive_build(build_dir):
            mod = cpp_extension.load(build_directory=str(build_dir), verbose=verbose, **kw)
    except Exception as e:  # surface the fix, keep the compiler output in the chain
        raise RuntimeError(
            f"building the tkprefix TK extension failed ({type(e).__name__}); build dir {build_dir}. "
            "Check THUNDERKITTENS_ROOT points at TK commit " + TK_COMMIT + " and that nvcc matches torch's CUDA "
            "(`tkprefix doctor`). Re-run with `tkprefix build --verbose` for the compiler output."
        ) from e
    mod.build_seconds = time.perf_counter() - t0
    _loaded[fams] = mod
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tkprefix build", description="build the TK extension ahead of time")
    ap.add_argument("--families", default=None, help="comma-separated kernel families (default: all)")
    ap.add_argument("--verbose", action="store_true", help="show the compiler commands and output")
    args = ap.parse_args(argv)
    fams = [f for f in args.families.split(",") if f] if args.families else None
    ok, reason = is_available()
    if not ok:
        print(f"tkprefix build: {reason}", file=sys.stderr)
        return 2
    mod = load_extension(fams, verbose=args.verbose)
    pre = prebuilt_dir()
    print(f"built {mod.__name__} from {kernels_dir()}"
          + (f" with the prebuilt kernels of {pre}" if pre else "") + f" in {mod.build_seconds:.1f} s "
          f"(hydragen ops: {bool(getattr(mod, 'has_hydragen_ops', False))}, "
          f"chunk ops: {bool(getattr(mod, 'has_chunk_ops', False))}, "
          f"tree ops: {bool(getattr(mod, 'has_tree_ops', False))}); module file {mod.__file__}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
