"""The prior_tk_chunk_first adapter's layout and merge on the CPU: a stand-in for the extension computes what the
kernel of jacksontromero/chunk-attention-tk writes (per chunk, per head, per sequence: unnormalized exp(s - max) @ V,
the max and the sum, rows at offsets[c] * H + head * n), and the merged output must match the float64 reference."""
import math

import torch

from tkprefix.bench import prior_tk
from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs, reference_rows, rel_err


class _FakeExt:
    max_seqs = 64

    @staticmethod
    def chunk_first(q, keys, values, offsets, begins, ends, rows, stream):
        H, B, D = q.shape
        attns = torch.empty(rows * H, D)
        maxs = torch.empty(rows * H)
        sums = torch.empty(rows * H)
        for c in range(keys.numel()):
            k = _FakeExt.blocks[int(keys[c])]  # (H, 64, D)
            v = _FakeExt.blocks[int(values[c])]
            b, e = int(begins[c]), int(ends[c])
            n = e - b
            for h in range(H):
                s = q[h, b:e].float() @ k[h].float().T / math.sqrt(D)
                m = s.max(dim=1).values
                p = torch.exp(s - m[:, None])
                base = int(offsets[c]) * H + h * n
                attns[base:base + n] = p @ v[h].float()
                maxs[base:base + n] = m
                sums[base:base + n] = p.sum(1)
        return attns, maxs, sums


def test_merge_matches_float64(monkeypatch):
    case = Case("t", 5, 2, 2, 128, ((1, 192),), 0)  # bf16, chunk 64: three shared chunks, five sequences
    inp = make_inputs(case, "cpu", seed=4)
    blocks = {}
    orig = torch.Tensor.data_ptr

    def data_ptr(t):  # the stand-in resolves "pointers" through this table
        blocks[orig(t)] = t
        return orig(t)

    monkeypatch.setattr(torch.Tensor, "data_ptr", data_ptr)
    _FakeExt.blocks = blocks
    monkeypatch.setattr(prior_tk, "build", lambda verbose=False: _FakeExt)
    impl = prior_tk.PriorTkChunkFirst()
    p = impl.prepare(case, inp)
    out = p.canonical(p.run())
    ref = reference_rows(case, inp, list(range(case.batch)))
    assert out.shape == (5, 2, 128) and rel_err(out, ref) < 1e-2


def test_unavailable_reasons():
    impl = prior_tk.PriorTkChunkFirst()
    assert "shared full chunk" in impl.unavailable_reason(Case("t", 4, 2, 2, 128, ((1, 128),), 8))
    assert "bf16" in impl.unavailable_reason(Case("t", 4, 2, 2, 128, ((1, 128),), 0, dtype="float16"))
    assert "64 sequences" in impl.unavailable_reason(Case("t", 128, 2, 2, 128, ((1, 128),), 0))


def test_never_builds_inside_the_benchmark(tmp_path, monkeypatch):
    src = tmp_path / "attn_chunk_first.cu"
    src.write_text("// stand-in\n")
    monkeypatch.setattr(prior_tk, "kernel_source", lambda: src)
    monkeypatch.setenv("TKPREFIX_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(prior_tk, "build", lambda verbose=False: (_ for _ in ()).throw(AssertionError("built")))
    reason = prior_tk.PriorTkChunkFirst().unavailable_reason(Case("t", 16, 2, 2, 128, ((1, 128),), 0))
    assert reason.startswith("not built: run `tkprefix build-peers`")
