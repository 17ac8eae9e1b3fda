"""Peer ``prior_tk_chunk_first``: the ThunderKittens chunk-first kernel of jacksontromero/chunk-attention-tk, the
project tkprefix grew from (``ThunderKittens/kernels/chunked_attn/attn_chunk_first.cu``: chunk-first only, bf16,
chunk 64, d 128, at most 64 sequences per chunk in the version carried; it ships as a test harness).

Its kernel file lives in git-ignored ``third_party/chunk-attention-tk`` (never committed). :func:`build` copies it
into the build folder without its test harness and compiles it with our binding ``kernels/peers/prior_chunk_first.cu``
against our ThunderKittens (its bundled TK predates the ``warp::`` API the kernel uses) through
``torch.utils.cpp_extension.load``. ``python -m tkprefix.bench.prior_tk`` builds it ahead of the benchmark.

Like ``tk_chunk_first`` it runs only where every token sits in a shared full chunk (configuration 4): its partials
are merged by the LSE rule outside the timed region and checked against the float64 reference. Batches above 64 are
unavailable: its metadata has a sequence range per chunk, but the kernel loads Q by TMA at ``seq_begin`` in units of
64-row tiles, so a range starting past sequence 0 reads the wrong rows (its harness always starts at 0).
"""
from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import torch

from .cases import Case
from .inputs import Inputs
from . import peers
from .peers import Impl, Prepared, Unsupported

__all__ = ["PriorTkChunkFirst", "build", "kernel_source"]

_REPO = Path(__file__).resolve().parents[3]
_NAME = "prior_tk_chunk_first_ext"
_loaded: dict[str, object] = {}


def kernel_source() -> Path:
    base = Path(os.environ.get("PRIOR_TK_ROOT", _REPO / "third_party" / "chunk-attention-tk"))
    return base / "ThunderKittens" / "kernels" / "chunked_attn" / "attn_chunk_first.cu"


def _build_dir() -> Path:
    return Path(os.environ.get("TKPREFIX_BUILD_DIR", _REPO / "build")) / _NAME


def build(verbose: bool = False):
    """Compile (first call; ninja reuses an up-to-date build) and import the extension; raises with the reason."""
    if _NAME in _loaded:
        return _loaded[_NAME]
    from torch.utils import cpp_extension

    from .. import build as tkbuild

    src = kernel_source()
    if not src.is_file():
        raise RuntimeError(f"{src} not found: extract jacksontromero/chunk-attention-tk's kernel there")
    reason = tkbuild.check_prerequisites()
    if reason:
        raise RuntimeError(reason)
    out = _build_dir()
    out.mkdir(parents=True, exist_ok=True)
    text = src.read_text()
    text = re.sub(r'^#include "harness\.impl"\s*$', "", text, flags=re.M)  # their test harness defines main()
    text = re.sub(r'^#include "\.\./\.\./include/kittens\.cuh"\s*$', "", text, flags=re.M)  # their bundled TK
    dst = out / "prior_chunk_first_kernel.cu"
    if not dst.is_file() or dst.read_text() != text:
        dst.write_text(text)
    os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0a"
    tk = tkbuild.tk_root()
    mod = cpp_extension.load(
        name=_NAME, sources=[str(_REPO / "kernels" / "peers" / "prior_chunk_first.cu")],
        extra_cuda_cflags=tkbuild.CUDA_FLAGS, extra_cflags=tkbuild.CXX_FLAGS,
        extra_include_paths=[str(tk / "include"), str(tk / "prototype"), str(out)], extra_ldflags=["-lcuda"],
        build_directory=str(out), verbose=verbose)
    _loaded[_NAME] = mod
    return mod


class PriorTkChunkFirst(Impl):
    name = "prior_tk_chunk_first"
    forest_reason = "chunk-first alone is measured only where every token sits in a shared full chunk (suffix 0)"

    def unavailable_reason(self, case: Case) -> str | None:
        if case.suffix or case.prefix % case.chunk_size or not case.levels:
            return "chunk-first alone is measured only where every token sits in a shared full chunk (suffix 0)"
        if (case.dtype, case.chunk_size, case.head_dim, case.group) != ("bfloat16", 64, 128, 1):
            return "its kernel is bf16, chunk 64, d 128, one q-head per kv-head only"
        if case.batch > 64 or any(r != 1 for r, _ in case.levels):
            return ("its kernel takes at most 64 sequences, all sharing every chunk (it loads Q at a tile, not row, "
                    "offset, so a chunk's sequence range must start at 0)")
        if not kernel_source().is_file():
            return f"kernel source not carried ({kernel_source()})"
        if _NAME not in _loaded and not list(_build_dir().glob(f"{_NAME}*.so")):
            # never compile inside a benchmark child (its supervisor would take the build for a hang)
            return "not built: run `tkprefix build-peers` before the benchmark"
        try:
            build()
        except Exception as e:  # noqa: BLE001 - the row carries the build error
            msg = " ".join(str(e).split())
            return f"build failed: {type(e).__name__}: {msg[-600:]}"
        return None

    def extra_bytes(self, case: Case) -> int:
        chunks = sum(n // case.chunk_size for _, n in case.levels)
        return (chunks * case.batch * case.q_heads * (case.head_dim + 2) * 4
                + 2 * chunks * case.chunk_size * case.kv_heads * case.head_dim * 2)

    def prepare(self, case: Case, inp: Inputs) -> Prepared:
        mod = build()
        if case.batch > int(mod.max_seqs):
            raise Unsupported(f"batch {case.batch} > its {int(mod.max_seqs)} sequences")
        dev, B, H, D, c = inp.q.device, case.batch, case.q_heads, case.head_dim, case.chunk_size
        blocks, keys, vals = [], [], []
        for sk, sv in zip(inp.shared_ks, inp.shared_vs):  # one row per level (checked above)
            nc = sk.shape[1] // c
            # its layout: one (H, 64, D) block per chunk
            kb = sk.reshape(nc, c, H, D).permute(0, 2, 1, 3).contiguous()
            vb = sv.reshape(nc, c, H, D).permute(0, 2, 1, 3).contiguous()
            blocks += [kb, vb]
            keys += [kb[j].data_ptr() for j in range(nc)]
            vals += [vb[j].data_ptr() for j in range(nc)]
        n = len(keys)
        offs, begins, ends = [j * B for j in range(n)], [0] * n, [B] * n
        rows = n * B
        i64 = dict(dtype=torch.int64, device=dev)
        i32 = dict(dtype=torch.int32, device=dev)
        meta = [torch.tensor(keys, **i64), torch.tensor(vals, **i64), torch.tensor(offs, **i32),
                torch.tensor(begins, **i32), torch.tensor(ends, **i32)]
        q = inp.q.reshape(B, H, D).transpose(0, 1).contiguous()  # (H, B, D), its TMA layout
        # where each entry's rows land: sequence index and head of every output row (for the merge)
        seq_of = torch.cat([torch.arange(b, e, device=dev).repeat(H) for b, e in zip(begins, ends)])
        head_of = torch.cat([torch.arange(H, device=dev).repeat_interleave(e - b) for b, e in zip(begins, ends)])

        def run():
            stream = torch.cuda.current_stream().cuda_stream if q.is_cuda else 0  # the capture stream in a graph
            return mod.chunk_first(q, *meta, rows, stream)

        def canonical(res) -> torch.Tensor:
            attns, maxs, sums = res
            m = torch.full((B * H,), -math.inf, device=dev)
            key = seq_of * H + head_of
            m = m.scatter_reduce(0, key, maxs, "amax")
            w = torch.exp(maxs - m[key])
            num = torch.zeros(B * H, D, device=dev).index_add_(0, key, attns * w[:, None])
            den = torch.zeros(B * H, device=dev).index_add_(0, key, sums * w)
            return (num / den[:, None]).reshape(B, H, D)

        return Prepared(run=run, canonical=canonical, state=(blocks, meta, q),
                        note="chunk-first phase only (partials merged outside the timed region); "
                             "jacksontromero/chunk-attention-tk @09adee44")


peers.REGISTRY[PriorTkChunkFirst.name] = PriorTkChunkFirst()


def main(argv: list[str] | None = None) -> int:
    """Build the extension ahead of the benchmark: ``python -m tkprefix.bench.prior_tk [--verbose]``."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        mod = build(verbose="--verbose" in argv)
    except Exception as e:  # noqa: BLE001
        print(f"prior_tk_chunk_first: build failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"built {mod.__file__} from {kernel_source()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
