"""Configuration 6: end-to-end decode of a Llama-shaped model with random weights (no download).

The model (sizes from the sweep file; default Llama-3-8B shapes: hidden 4096, 32 q-heads / 8 kv-heads of 128,
SwiGLU 14336, vocab 128256, RoPE θ 5e5, RMSNorm) is built on the GPU from a seeded generator. A shared prompt of
``prompt`` tokens is prefilled once (batch 1, causal SDPA) into per-layer prefix K/V; then ``batch`` sequences decode
``new_tokens`` tokens each. Every attention implementation decodes the *same* token stream (drawn once from a seeded
generator and fed step by step, i.e. teacher-forced), so all do identical work; the logits of the last step are
compared with the ``sdpa_naive`` model's (rel_err).

Measured per implementation: wall-clock time of the whole decode loop (``tokens_per_s = batch·new_tokens / time``,
median over ``reps`` loops; host work such as FlashInfer's per-step ``plan`` included) and CUDA-event time of every
step (median / p20 / p80 over all steps of all loops). Eager mode for every implementation (the naive cache grows
by one token per step, so its step is not one static graph).

Attention implementations (each owns its KV layout):

* ``sdpa_naive``: a standard cache ``(B, Hkv, prompt+new, D)`` with the prompt copied into every sequence; SDPA.
* ``sdpa_hydragen``: prompt K/V once ``(1, Hkv, P, D)`` + suffix cache; FlashAttention with LSE for both + merge.
* ``flashinfer_cascade``: paged cache (page 16), prompt pages shared; two-level cascade, planned every step.
* ``tk_hydragen`` / ``torch_hydragen``: ``tkprefix.hydragen_attention_nopad`` with ``seq_len`` (prompt once).
* ``tk_chunk_attn`` / ``torch_chunk_attn``: ``tkprefix.chunk_attention`` over one ``ChunkKVCache`` (a pool per
  layer, one prefix tree): the prompt's full chunks shared, each sequence's new tokens appended into private chunks
  (``reserve`` on the host, lengths + K/V writes on the device). A step where the sequences cross a chunk border
  changes the tree: it is re-planned on the host and, in graph mode, the step is captured again, inside the timed
  loop (every ``chunk_size`` steps in lock-step; the note counts them).
"""

from __future__ import annotations

import gc
import math
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import schema, stats
from .cases import Sweep
from .peers import merge_lse, sdpa_with_lse
from .timing import capture_graph

__all__ = ["ModelConfig", "run_e2e"]


@dataclass(frozen=True)
class ModelConfig:
    layers: int = 16
    hidden: int = 4096
    q_heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128
    intermediate: int = 14336
    vocab: int = 128256
    rope_theta: float = 500000.0
    eps: float = 1e-5

    @property
    def layer_params(self) -> int:
        h, d = self.hidden, self.head_dim
        return h * (self.q_heads + 2 * self.kv_heads) * d + self.q_heads * d * h + 3 * h * self.intermediate

    @property
    def matmul_params(self) -> int:
        """Weights every decode step multiplies (all layers + lm_head; the embedding is a gather)."""
        return self.layers * self.layer_params + self.vocab * self.hidden


class Model:
    def __init__(self, cfg: ModelConfig, device: torch.device, seed: int = 0) -> None:
        self.cfg = cfg
        g = torch.Generator(device=device).manual_seed(seed)
        bf = torch.bfloat16

        def w(out_f: int, in_f: int) -> torch.Tensor:
            t = torch.randn(out_f, in_f, generator=g, device=device, dtype=bf)
            return t.mul_(1.0 / math.sqrt(in_f))

        c = cfg
        self.embed = torch.randn(c.vocab, c.hidden, generator=g, device=device, dtype=bf)
        self.layers = []
        for _ in range(c.layers):
            self.layers.append(dict(
                wqkv=w((c.q_heads + 2 * c.kv_heads) * c.head_dim, c.hidden),
                wo=w(c.hidden, c.q_heads * c.head_dim),
                wgu=w(2 * c.intermediate, c.hidden),
                wd=w(c.hidden, c.intermediate),
                n1=torch.ones(c.hidden, device=device, dtype=bf),
                n2=torch.ones(c.hidden, device=device, dtype=bf)))
        self.norm = torch.ones(c.hidden, device=device, dtype=bf)
        self.lm_head = w(c.vocab, c.hidden)
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, device=device, dtype=torch.float32) / c.head_dim))
        self._inv_freq = inv

    def rope_tables(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        ang = torch.outer(torch.arange(n, device=self._inv_freq.device, dtype=torch.float32), self._inv_freq)
        ang = torch.cat([ang, ang], dim=-1)
        return ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)

    def rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.cfg.eps)).to(x.dtype) * w

    @staticmethod
    def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    def _qkv(self, L: dict, x: torch.Tensor):
        c = self.cfg
        qkv = self.rms(x, L["n1"]) @ L["wqkv"].T
        q, k, v = qkv.split([c.q_heads * c.head_dim, c.kv_heads * c.head_dim, c.kv_heads * c.head_dim], dim=-1)
        return (q.unflatten(-1, (c.q_heads, c.head_dim)), k.unflatten(-1, (c.kv_heads, c.head_dim)),
                v.unflatten(-1, (c.kv_heads, c.head_dim)))

    def _mlp(self, L: dict, x: torch.Tensor) -> torch.Tensor:
        gu = self.rms(x, L["n2"]) @ L["wgu"].T
        gt, up = gu.chunk(2, dim=-1)
        return (F.silu(gt) * up) @ L["wd"].T

    @torch.no_grad()
    def prefill(self, tokens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Causal forward of the shared prompt (batch 1): per-layer (K, V) ``(P, Hkv, D)`` after RoPE."""
        c = self.cfg
        P = tokens.shape[0]
        x = self.embed[tokens]
        kv = []
        for L in self.layers:
            q, k, v = self._qkv(L, x)
            q = self.rope(q, cos[:P, None], sin[:P, None])
            k = self.rope(k, cos[:P, None], sin[:P, None])
            kv.append((k.contiguous(), v.contiguous()))
            o = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                               v.transpose(0, 1)[None], is_causal=True, enable_gqa=True)
            x = x + o[0].transpose(0, 1).reshape(P, -1) @ L["wo"].T
            x = x + self._mlp(L, x)
        return kv

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, t_dev: torch.Tensor, P: int, att: "Attention", cos: torch.Tensor,
             sin: torch.Tensor) -> torch.Tensor:
        """One decode step of every sequence: logits ``(B, vocab)``.

        Every input that changes between steps lives on the device (``tokens`` (B,) int64, ``t_dev`` (1,) int64: the
        step index), so the whole step can be captured once in a CUDA graph and replayed for every step."""
        B = tokens.shape[0]
        x = self.embed.index_select(0, tokens)
        pos = t_dev + P
        cs, sn = cos.index_select(0, pos)[None], sin.index_select(0, pos)[None]  # (1, 1, D)
        att.begin_step(t_dev)
        for i, L in enumerate(self.layers):
            q, k, v = self._qkv(L, x)
            q, k = self.rope(q, cs, sn), self.rope(k, cs, sn)
            o = att.attend(i, q.contiguous(), k.contiguous(), v.contiguous())
            x = x + o.reshape(B, -1) @ L["wo"].T
            x = x + self._mlp(L, x)
        return self.rms(x, self.norm) @ self.lm_head.T


class Attention:
    """Per-implementation KV state across layers. ``plan(t)`` is host work before step t (FlashInfer's plan); it
    returns True when a captured graph of the step is no longer valid (the implementation's plan changed shape).
    ``begin_step(t_dev)`` and ``attend(layer, q, k, v)`` are device-only (capturable): attend appends (k, v) at the
    step's slot and attends over the prompt plus the ``t + 1`` new tokens. ``reset()`` (untimed) brings the state
    back to the prompt alone before a decode loop, and returns True if it changed what a graph captured."""

    replans = 0

    def plan(self, t: int) -> bool:
        return False

    def reset(self) -> bool:
        return False

    def begin_step(self, t_dev: torch.Tensor) -> None:
        self.t = t_dev

    def attend(self, layer: int, q, k, v) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class NaiveAttention(Attention):
    """A static cache ``(B, Hkv, P + T, D)`` per layer with the prompt copied into every sequence, and SDPA over the
    whole static length with a boolean mask of the used slots (the layout of a static-cache SDPA decoder, e.g.
    transformers' StaticCache; SDPA picks its memory-efficient kernel for a masked call)."""

    def __init__(self, prefix_kv, B: int, T: int) -> None:
        self.P = prefix_kv[0][0].shape[0]
        self.caches = []
        for pk, pv in prefix_kv:
            P, Hkv, D = pk.shape
            # zeros, not empty: a masked slot still enters P @ V, and 0 * NaN from stale memory is NaN
            K = torch.zeros(B, Hkv, P + T, D, dtype=pk.dtype, device=pk.device)
            V = torch.zeros_like(K)
            K[:, :, :P].copy_(pk.permute(1, 0, 2)[None].expand(B, Hkv, P, D))
            V[:, :, :P].copy_(pv.permute(1, 0, 2)[None].expand(B, Hkv, P, D))
            self.caches.append((K, V))
        self.ar = torch.arange(self.P + T, device=pk.device)

    def begin_step(self, t_dev):
        self.slot = t_dev + self.P
        self.mask = (self.ar <= self.slot)[None, None, None]  # (1, 1, 1, P + T)

    def attend(self, layer, q, k, v):
        K, V = self.caches[layer]
        K.index_copy_(2, self.slot, k.unsqueeze(2))
        V.index_copy_(2, self.slot, v.unsqueeze(2))
        B, Hq, D = q.shape
        Hkv = K.shape[1]
        o = F.scaled_dot_product_attention(q.view(B, Hkv, Hq // Hkv, D), K, V, attn_mask=self.mask)
        return o.reshape(B, Hq, D)


class SdpaHydragenAttention(Attention):
    """Hydragen in plain PyTorch: the prompt once ``(1, Hkv, P, D)`` through FlashAttention with all queries
    stacked, the new tokens ``(B, Hkv, T, D)`` through the memory-efficient kernel with a mask of the used slots
    (both return the LSE), merged by LSE."""

    def __init__(self, prefix_kv, B: int, T: int) -> None:
        self.prefix = [(pk.permute(1, 0, 2)[None].contiguous(), pv.permute(1, 0, 2)[None].contiguous())
                       for pk, pv in prefix_kv]
        P, Hkv, D = prefix_kv[0][0].shape
        dev, dt = prefix_kv[0][0].device, prefix_kv[0][0].dtype
        self.suffix = [(torch.zeros(B, Hkv, T, D, dtype=dt, device=dev), torch.zeros(B, Hkv, T, D, dtype=dt, device=dev))
                       for _ in prefix_kv]
        self.ar = torch.arange(T, device=dev)
        self.B, self.Hkv, self.T, self.dt = B, Hkv, T, dt

    def begin_step(self, t_dev):
        self.t = t_dev
        self.bias = None

    def attend(self, layer, q, k, v):
        pk, pv = self.prefix[layer]
        sk, sv = self.suffix[layer]
        sk.index_copy_(2, self.t, k.unsqueeze(2))
        sv.index_copy_(2, self.t, v.unsqueeze(2))
        B, Hq, D = q.shape
        Hkv = pk.shape[1]
        g = Hq // Hkv
        if self.bias is None:
            keep = (self.ar <= self.t)[None, None, None]
            self.bias = torch.zeros(B, Hkv, g, self.T, dtype=q.dtype, device=q.device).masked_fill(
                ~keep, float("-inf"))
        qg = q.view(B, Hkv, g, D)
        qs = qg.permute(1, 0, 2, 3).reshape(1, Hkv, B * g, D)
        o1, l1 = sdpa_with_lse(qs, pk, pv)
        o1 = o1.reshape(Hkv, B, g, D).permute(1, 0, 2, 3)
        l1 = l1.reshape(Hkv, B, g).permute(1, 0, 2)
        r = torch.ops.aten._scaled_dot_product_efficient_attention(qg, sk, sv, self.bias, True)
        o2, l2 = r[0], r[1][:, :, :g]
        o, _ = merge_lse(o1, l1, o2, l2)
        return o.to(q.dtype).reshape(B, Hq, D)


class TkHydragenAttention(Attention):
    """``tkprefix.hydragen_attention_nopad``: the prompt once as the shared level, the new tokens as the unique
    cache ``(B, T, Hkv, D)`` with ``seq_len = t + 1``."""

    def __init__(self, prefix_kv, B: int, T: int, backend: str) -> None:
        import tkprefix

        self.tk, self.backend = tkprefix, backend
        self.prefix = [(pk[None], pv[None]) for pk, pv in prefix_kv]  # (1, P, Hkv, D)
        P, Hkv, D = prefix_kv[0][0].shape
        dev, dt = prefix_kv[0][0].device, prefix_kv[0][0].dtype
        self.suffix = [(torch.empty(B, T, Hkv, D, dtype=dt, device=dev), torch.empty(B, T, Hkv, D, dtype=dt, device=dev))
                       for _ in prefix_kv]
        self.seq_len = torch.zeros(B, dtype=torch.int32, device=dev)

    def begin_step(self, t_dev):
        self.t = t_dev
        self.seq_len.copy_((t_dev + 1).expand_as(self.seq_len))

    def attend(self, layer, q, k, v):
        pk, pv = self.prefix[layer]
        sk, sv = self.suffix[layer]
        sk.index_copy_(1, self.t, k.unsqueeze(1))
        sv.index_copy_(1, self.t, v.unsqueeze(1))
        B, Hq, D = q.shape
        o = self.tk.hydragen_attention_nopad(q.view(B, 1, Hq, D), sk, sv, [pk], [pv], seq_len=self.seq_len,
                                             backend=self.backend, validate=False)  # seq_len: ours, valid (peers.py)
        return o.reshape(B, Hq, D)


class ChunkAttention(Attention):
    """``tkprefix.chunk_attention`` over one ChunkKVCache for every layer: B sequences of the prompt's tokens (its
    full chunks shared), each step's token appended to every sequence. ``stream_host`` (T, B): the step tokens, on
    the host, as a server holds sampled tokens."""

    def __init__(self, prefix_kv, B: int, T: int, backend: str, prompt, stream_host, q_heads: int,
                 chunk_size: int = 64) -> None:
        import numpy as np

        import tkprefix

        self.tk, self.backend, self.q_heads = tkprefix, backend, q_heads
        P, Hkv, D = prefix_kv[0][0].shape
        dev, dt = prefix_kv[0][0].device, prefix_kv[0][0].dtype
        self.B, self.prompt = B, np.asarray(prompt.cpu() if isinstance(prompt, torch.Tensor) else prompt, np.int64)
        self.stream = np.asarray(stream_host, dtype=np.int64)
        self.pk = torch.stack([pk for pk, _ in prefix_kv])  # (layers, P, Hkv, D)
        self.pv = torch.stack([pv for _, pv in prefix_kv])
        capacity = -(-P // chunk_size) + B * (-(-T // chunk_size) + 2)
        self.cache = tkprefix.ChunkKVCache(Hkv, D, chunk_size, dt, dev, capacity_chunks=capacity,
                                           n_layers=len(prefix_kv))
        self.n_dev = torch.zeros((), dtype=torch.int32, device=dev)
        self.reset()

    def reset(self) -> bool:
        for s in self.cache.seq_ids:
            self.cache.remove_seq(s)
        ids = [self.cache.add_seq(self.prompt, self.pk, self.pv) for _ in range(self.B)]
        if self.cache.seq_ids != ids:
            raise RuntimeError("the cache's row order differs from the batch order")
        self.last_t, self.replans, self.stale = None, 0, True  # a new tree: the next step needs a new graph
        return True

    def plan(self, t: int) -> bool:
        if t == self.last_t:  # planned already (the graph was captured right after)
            return False
        self.last_t = t
        changed = self.cache.reserve(self.stream[t]) or self.stale
        self.stale = False
        self.n_dev.fill_(self.cache.appended)
        if changed:
            self.replans += 1
            if self.backend == "tk":  # build the kernels' work lists now, outside any graph capture
                from tkprefix import tk_chunk

                tk_chunk.plan_work(self.cache, self.q_heads)
        return changed

    def begin_step(self, t_dev):
        self.cache.step_lengths(self.n_dev)

    def attend(self, layer, q, k, v):
        self.cache.write_kv(k, v, layer)
        return self.tk.chunk_attention(q, self.cache, backend=self.backend, layer=layer)


class FlashInferAttention(Attention):
    """FlashInfer's two-level cascade over a paged cache (page 16): the prompt's pages shared by all sequences, each
    sequence's new tokens in its own pages; planned on the host before every step (into fixed buffers, so the
    captured step stays valid), one plan for all layers."""

    page = 16

    def __init__(self, prefix_kv, B: int, T: int, q_heads: int) -> None:
        import flashinfer

        P, Hkv, D = prefix_kv[0][0].shape
        dev, dt = prefix_kv[0][0].device, prefix_kv[0][0].dtype
        ps = self.page
        self.B, self.Hq, self.Hkv, self.D, self.dt = B, q_heads, Hkv, D, dt
        self.np_p = math.ceil(P / ps)
        self.np_s = math.ceil(T / ps)
        self.last_p = P - (self.np_p - 1) * ps
        n = self.np_p + B * self.np_s
        self.pools = []
        for pk, pv in prefix_kv:
            pool = torch.zeros(n, 2, ps, Hkv, D, dtype=dt, device=dev)
            for j, src in ((0, pk), (1, pv)):
                src = F.pad(src, (0, 0, 0, 0, 0, self.np_p * ps - P))
                pool[: self.np_p, j].copy_(src.reshape(self.np_p, ps, Hkv, D))
            self.pools.append(pool)
        self.workspace = torch.empty(128 << 20, dtype=torch.uint8, device=dev)
        i32 = dict(dtype=torch.int32, device=dev)
        self.i32 = i32
        self.seq_base = self.np_p + torch.arange(B, **i32) * self.np_s
        self.seq_base_l = self.seq_base.long()
        self.qo = [torch.tensor([0, B], **i32), torch.arange(B + 1, **i32)]
        self.kvp0 = torch.tensor([0, self.np_p], **i32)
        self.idx0 = torch.arange(self.np_p, **i32)
        self.last0 = torch.tensor([self.last_p], **i32)
        self.ar = torch.arange(B + 1, **i32)
        bufs = [[t.clone() for t in self.qo], [self.kvp0.clone(), torch.zeros(B + 1, **i32)],
                [self.idx0.clone(), torch.zeros(B * self.np_s, **i32)], [self.last0.clone(), torch.zeros(B, **i32)]]
        self.w = flashinfer.MultiLevelCascadeAttentionWrapper(
            2, self.workspace, "NHD", use_cuda_graph=True, qo_indptr_buf_arr=bufs[0],
            paged_kv_indptr_buf_arr=bufs[1], paged_kv_indices_buf_arr=bufs[2], paged_kv_last_page_len_buf_arr=bufs[3])
        self.bufs = bufs

    def plan(self, t):
        ps = self.page
        used = t // ps + 1
        idx1 = (self.seq_base[:, None] + torch.arange(used, **self.i32)[None]).reshape(-1)
        last1 = torch.full((self.B,), t - (used - 1) * ps + 1, **self.i32)
        self.w.plan(self.qo, [self.kvp0, self.ar * used], [self.idx0, idx1], [self.last0, last1], self.Hq, self.Hkv,
                    self.D, ps, causal=False, q_data_type=self.dt, kv_data_type=self.dt)

    def begin_step(self, t_dev):
        ps = self.page
        page = self.seq_base_l + t_dev // ps  # (B,)
        self.row_k = (page * 2) * ps + t_dev % ps  # rows of pool.view(-1, Hkv, D)
        self.row_v = self.row_k + ps

    def attend(self, layer, q, k, v):
        pool = self.pools[layer]
        flat = pool.view(-1, self.Hkv, self.D)
        flat.index_copy_(0, self.row_k, k)
        flat.index_copy_(0, self.row_v, v)
        return self.w.run(q, pool)


def _make_attention(name: str, prefix_kv, B: int, T: int, cfg: ModelConfig, prompt=None,
                    stream_host=None) -> Attention:
    if name == "sdpa_naive":
        return NaiveAttention(prefix_kv, B, T)
    if name == "sdpa_hydragen":
        return SdpaHydragenAttention(prefix_kv, B, T)
    if name == "flashinfer_cascade":
        return FlashInferAttention(prefix_kv, B, T, cfg.q_heads)
    if name == "tk_hydragen":
        return TkHydragenAttention(prefix_kv, B, T, "tk")
    if name == "torch_hydragen":
        return TkHydragenAttention(prefix_kv, B, T, "torch")
    if name in ("tk_chunk_attn", "torch_chunk_attn"):
        return ChunkAttention(prefix_kv, B, T, name.split("_")[0], prompt, stream_host, cfg.q_heads)
    raise KeyError(name)


E2E_IMPLS = ("sdpa_naive", "sdpa_hydragen", "flashinfer_cascade", "tk_hydragen", "torch_hydragen", "tk_chunk_attn",
             "torch_chunk_attn")
E2E_UNSUPPORTED = {
    # Upstream is built and measured kernel-only in c1, c2, c4, c5; this model is beyond what it supports.
    "chunk_attn_upstream": "cannot run this model: upstream ChunkAttention's kernels are fp16 only (the model is bf16) "
                           "and have no GQA (c6: 32 q / 8 kv heads)",
    "hydragen_upstream": "flash-attn not installed",
}


def _availability(name: str) -> str | None:
    if name in E2E_UNSUPPORTED:
        if name == "hydragen_upstream":
            try:
                import flash_attn  # noqa: F401
            except Exception:
                return E2E_UNSUPPORTED[name]
            return "upstream Hydragen's model integration is not wired into this harness's model"
        return E2E_UNSUPPORTED[name]
    if name not in E2E_IMPLS:
        return f"unknown e2e implementation {name!r}"
    if name == "flashinfer_cascade":
        try:
            import flashinfer  # noqa: F401
        except Exception as e:
            return f"flashinfer not importable ({type(e).__name__}: {e})"
    if name in ("tk_hydragen", "tk_chunk_attn"):
        from .peers import _tk_reason

        try:
            import tkprefix
        except Exception as e:
            return f"tkprefix not importable ({type(e).__name__}: {e})"
        return _tk_reason(tkprefix)
    return None


def run_e2e(sweep: Sweep, ceilings: dict[str, float], *, run_id: str = "", log: Callable[[str], None] = print,
            skip_reason: str | None = None, skip: dict[str, str] | None = None,
            progress: Callable[[str | None, str], None] | None = None) -> list[dict[str, Any]]:
    """Rows of configuration 6. skip: impl -> status (``wrong: ...``) or reason (→ unavailable) for impls not to run;
    progress(impl, stage) before every step that runs device code (see supervise.py)."""
    prog = progress or (lambda impl, stage: None)
    raw = sweep.raw
    cfg = ModelConfig(**raw.get("model", {}))
    P = int(raw.get("prompt", 4096))
    T = int(raw.get("new_tokens", 128))
    batches = [int(b) for b in raw.get("batch", [32, 128])]
    reps = int(raw.get("reps", 2))
    dev = torch.device("cuda")
    rows: list[dict[str, Any]] = []
    elem = 2

    def base(B: int) -> dict[str, Any]:
        kv_tok = cfg.kv_heads * cfg.head_dim * 2 * elem * cfg.layers
        # per step: all matmul weights + the prompt KV once + the suffix KV (mean length T/2) + new K/V writes
        ub = cfg.matmul_params * elem + P * kv_tok + B * (T / 2 + 1) * kv_tok
        fl = 2 * cfg.matmul_params * B + cfg.layers * 4 * B * cfg.q_heads * (P + T / 2) * cfg.head_dim
        return {"config": sweep.config, "batch": B, "q_heads": cfg.q_heads, "kv_heads": cfg.kv_heads,
                "head_dim": cfg.head_dim, "prefix": P, "suffix": T, "dtype": "bfloat16", "graph": 0,
                "unique_bytes": int(ub), "flops": int(fl),
                "roofline_us": stats.roofline_us(ub, fl, ceilings["copy_bw_bytes_per_s"], ceilings["gemm_flops_per_s"]),
                "layers": cfg.layers, "hidden": cfg.hidden, "new_tokens": T, "run_id": run_id, "note": ""}

    def add(B: int, impl: str, status: str, **kw: Any) -> None:
        r = base(B)
        r.update(impl=impl, status=status, median_us=None, p20_us=None, p80_us=None, n=None, rel_err=None,
                 pct_roofline=None, tokens_per_s=None, median_step_us=None)
        r.update(kw)
        rows.append(r)

    if skip_reason:
        for B in batches:
            for name in sweep.impls:
                add(B, name, schema.unavailable(skip_reason))
        return rows

    t0 = time.time()
    prog(None, "model + prefill")
    model = Model(cfg, dev, seed=0)
    cos, sin = model.rope_tables(P + T)
    gen = torch.Generator(device=dev).manual_seed(1)
    prompt = torch.randint(0, cfg.vocab, (P,), generator=gen, device=dev)
    prefix_kv = model.prefill(prompt, cos, sin)
    torch.cuda.synchronize()
    log(f"[e2e] model ({cfg.layers} layers) + prefill of {P} tokens: {time.time() - t0:.1f} s")

    graph_modes = [bool(g) for g in raw.get("graph", [False, True])]
    eager_reps = int(raw.get("eager_reps", 1))
    for B in batches:
        stream = torch.randint(0, cfg.vocab, (T, B), generator=gen, device=dev)  # the same tokens for every impl
        tokens = torch.empty(B, dtype=torch.long, device=dev)  # step inputs live on the device (graph-capturable)
        t_dev = torch.zeros(1, dtype=torch.long, device=dev)
        stream_host = stream.cpu().numpy()  # the prefix-tree cache records tokens on the host, as a server has them
        ref_logits: torch.Tensor | None = None
        for name in sweep.impls:
            reason = (skip or {}).get(name) or _availability(name)
            if reason:
                for g in graph_modes:
                    add(B, name, reason if reason.startswith("wrong: ") else schema.unavailable(reason), graph=int(g))
                continue
            att = graph = None
            prog(name, f"batch {B}: setup + warm-up")
            try:
                att = _make_attention(name, prefix_kv, B, T, cfg, prompt, stream_host)

                def set_step(t: int) -> bool:
                    tokens.copy_(stream[t])
                    t_dev.fill_(t)
                    return bool(att.plan(t))

                def step() -> torch.Tensor:
                    return model.step(tokens, t_dev, P, att, cos, sin)

                for t in range(2):  # warm-up (JIT, handles); the timed loops rewrite these slots
                    set_step(t)
                    step()
                torch.cuda.synchronize()
                for g in graph_modes:
                    label = "graph" if g else "eager"
                    try:
                        if g:
                            prog(name, f"batch {B}: graph capture")
                            att.reset()
                            set_step(0)
                            graph, gout = capture_graph(step)
                            run = graph.replay
                        else:
                            run = step
                        walls, steps, replans = [], [], []
                        logits = None
                        for rep in range(reps if g else eager_reps):
                            prog(name, f"batch {B}: {label} decode loop {rep}")
                            att.reset()  # untimed: back to the prompt alone (a no-op for fixed-slot caches)
                            ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                                  for _ in range(T)]
                            torch.cuda.synchronize()
                            w0 = time.perf_counter()
                            for t in range(T):
                                if set_step(t) and g:  # the step's plan changed shape: capture it again (timed)
                                    graph = None
                                    graph, gout = capture_graph(step, warmup=0)
                                    run = graph.replay
                                ev[t][0].record()
                                out = run()
                                ev[t][1].record()
                            torch.cuda.synchronize()
                            walls.append(time.perf_counter() - w0)
                            replans.append(att.replans)
                            steps += [a.elapsed_time(b) * 1e3 for a, b in ev]
                            logits = gout if g else out
                        last = logits.float()
                        if not bool(torch.isfinite(last).all()):
                            add(B, name, schema.wrong("non-finite logits"), graph=int(g))
                            continue
                        if ref_logits is None:
                            ref_logits, err, ref_note = last.clone(), 0.0, "self (first ok implementation)"
                        else:
                            err = float(torch.linalg.vector_norm(last - ref_logits)
                                        / torch.linalg.vector_norm(ref_logits))
                            ref_note = "the first ok implementation's"
                        q = stats.quantiles(steps)
                        wall = sorted(walls)[len(walls) // 2]
                        tps = B * T / wall
                        replan_note = (f"; re-planned (tree changed) at {max(replans)} of {T} steps per loop"
                                       + (", graph captured again each time inside the timed loop" if g else "")
                                       if any(replans) else "")
                        res = dict(median_us=q.median, p20_us=q.p20, p80_us=q.p80, n=q.n, rel_err=err,
                                   tokens_per_s=tps, median_step_us=q.median, graph=int(g),
                                   pct_roofline=stats.pct_of_roofline(base(B)["roofline_us"], q.median),
                                   note=f"{label}; wall per {T}-step loop (s): {', '.join(f'{x:.3f}' for x in walls)};"
                                        f" last-step logits vs {ref_note}{replan_note}")
                        if err > 5e-2:
                            add(B, name, schema.wrong(f"last-step logits rel_err {err:.3g} > 5e-2 vs the first ok "
                                                      "implementation"), rel_err=err, graph=int(g))
                            continue
                        add(B, name, "ok", **res)
                        log(f"[e2e] B={B} {name} {label}: {tps:,.0f} tok/s, step median {q.median:.0f} us "
                            f"(p20 {q.p20:.0f}, p80 {q.p80:.0f}), rel_err {err:.3g}{replan_note}")
                    except torch.cuda.OutOfMemoryError:
                        add(B, name, "oom", graph=int(g))
                    except Exception as e:  # noqa: BLE001
                        from .runner import FatalCudaError, is_fatal_cuda

                        log(f"[e2e] B={B} {name} {label}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
                        if is_fatal_cuda(e):
                            raise FatalCudaError(name, f"{type(e).__name__}: {e}") from e
                        add(B, name, schema.wrong(f"{label}: {type(e).__name__}: {e}") if not g else
                            schema.unavailable(f"CUDA graph capture/replay failed: {type(e).__name__}: {e}"),
                            graph=int(g))
                    finally:
                        graph = None
                        torch.cuda.synchronize()
            except torch.cuda.OutOfMemoryError:
                for g in graph_modes:
                    add(B, name, "oom", graph=int(g))
            except Exception as e:  # noqa: BLE001
                from .runner import FatalCudaError, is_fatal_cuda

                log(f"[e2e] B={B} {name}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
                if isinstance(e, FatalCudaError):
                    raise
                if is_fatal_cuda(e):
                    raise FatalCudaError(name, f"{type(e).__name__}: {e}") from e
                done = {r["graph"] for r in rows if r["batch"] == B and r["impl"] == name}
                for g in graph_modes:
                    if int(g) not in done:
                        add(B, name, schema.wrong(f"{type(e).__name__}: {e}"), graph=int(g))
            finally:
                att = graph = None
                gc.collect()
                torch.cuda.empty_cache()
    del model, prefix_kv
    gc.collect()
    torch.cuda.empty_cache()
    return rows
