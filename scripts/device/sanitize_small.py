"""Small cases of each Hydragen kernel, for compute-sanitizer (memcheck / racecheck).

Usage: compute-sanitizer --tool memcheck python scripts/device/sanitize_small.py
Covers: prefix (partial row block, tail keys, 2 key splits, GQA 4; the overlapped loop on a persistent grid; 176-key
tiles), decode (causal + seq_len with an empty sequence; 2 and 3 splits: two-tile splits, and one-tile splits on the
one-stage kernel; 8, 24 and 48 rows per kv-head: 1, 2 and 4 row tiles a block; 800 blocks, more than fit at once,
with a prefix merged in, co-run with the prefix on 3 SMs, and on 64-key caches), the decode inside the prefix kernel
(prefix_decode), merge. Prints the max error of each against a float64 reference.
"""
import math

import torch

from tkprefix import tk_hydragen as tkh


def ref(q, keys, vals, vis):
    R = q.shape[2] // keys.shape[2]
    kk, vv = keys.double().repeat_interleave(R, 2), vals.double().repeat_interleave(R, 2)
    s = torch.einsum("bnhd,bthd->bnht", q.double(), kk) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~vis[:, :, None, :], -math.inf)
    p = torch.nan_to_num(torch.softmax(s, -1))
    return torch.einsum("bnht,bthd->bnhd", p, vv)


torch.manual_seed(1)
dt = torch.bfloat16
for D in (64, 128):
    q = torch.randn(6, 1, 8, D, device="cuda", dtype=dt)
    pk, pv = torch.randn(2, 300, 2, D, device="cuda", dtype=dt), torch.randn(2, 300, 2, D, device="cuda", dtype=dt)
    o, lse = tkh.prefix_attention(q, pk, pv, n_splits=2)
    r = ref(q, pk.repeat_interleave(3, 0), pv.repeat_interleave(3, 0), torch.ones(6, 1, 300, dtype=torch.bool, device="cuda"))
    print(f"prefix D{D}: max err {(o.double() - r).abs().max().item():.3e}")
    # the overlapped loop (> 64 stacked rows, >= 12 key tiles): 80 rows a (prefix row, kv-head) in a 128-row block,
    # 1,600 keys (a partial last tile), 140 work items on the persistent grid (one per SM: some blocks take two)
    q = torch.randn(700, 1, 16, D, device="cuda", dtype=dt)
    pk, pv = (torch.randn(70, 1600, 2, D, device="cuda", dtype=dt) for _ in range(2))
    o, lse = tkh.prefix_attention(q, pk, pv, n_splits=1, consumer_warpgroups=2)
    idx = torch.tensor([0, 9, 345, 699], device="cuda")
    r = ref(q[idx], pk[idx // 10], pv[idx // 10], torch.ones(4, 1, 1600, dtype=torch.bool, device="cuda"))
    print(f"prefix D{D} overlapped loop: max err {(o[idx].double() - r).abs().max().item():.3e}, "
          f"NaN {int(o.isnan().sum())}")
    if D == 128:   # 176-key tiles (the serial loop's short compute-bound items): 396 rows, 350 keys in 2 tiles,
        # the last partial; the last block's second warpgroup idle; 32 work items on a 20-block persistent grid
        q = torch.randn(33, 3, 32, D, device="cuda", dtype=dt)
        pk, pv = (torch.randn(1, 350, 8, D, device="cuda", dtype=dt) for _ in range(2))
        assert tkh._prefix_schedule(q, pk, 2, False, 1, 20) == (4, 20)
        o = torch.full_like(q, float("nan"))
        lse = torch.full(q.shape[:3], float("nan"), device="cuda")
        tkh._ext().prefix_attention(q, pk, pv, o, lse, 1, 2, 4, 20, tkh._stream(q))
        r = ref(q, pk.expand(33, -1, -1, -1), pv.expand(33, -1, -1, -1), torch.ones(33, 3, 350, dtype=torch.bool,
                                                                                  device="cuda"))
        print(f"prefix D{D} 176-key tiles: max err {(o.double() - r).abs().max().item():.3e}, NaN {int(o.isnan().sum())}")
    k, v = torch.randn(3, 150, 4, D, device="cuda", dtype=dt), torch.randn(3, 150, 4, D, device="cuda", dtype=dt)
    for Nq, Hq in ((3, 32), (1, 32), (3, 64)):   # 24, 8 and 48 rows per kv-head: 2, 1 and 4 row tiles a block
        q = torch.randn(3, Nq, Hq, D, device="cuda", dtype=dt)
        for sl, n in ((None, 2), (torch.tensor([0, 150, 77], device="cuda", dtype=torch.int32), 2), (None, 3)):
            o, lse = tkh.decode_attention(q, k, v, sl, n_splits=n)
            t = torch.arange(150, device="cuda")
            lim = ((150 - Nq + 1 + torch.arange(Nq, device="cuda"))[None].expand(3, Nq) if sl is None
                   else sl.long()[:, None].expand(3, Nq))
            r = ref(q, k, v, t[None, None] < lim[..., None])
            print(f"decode D{D} rows {Nq * Hq // 4} seq_len={'None' if sl is None else 'given'} splits {n}: "
                  f"max err {(o.double() - r).abs().max().item():.3e}")
    o2, l2 = tkh.merge_states(o, lse, o, lse)
    print(f"merge D{D}: max err {(o2.double() - o.double()).abs().max().item():.3e}")
    # 800 decode blocks (more than fit at once), 1-2 tiles each, some empty, the prefix's partials merged into the
    # decode's output
    q = torch.randn(400, 1, 8, D, device="cuda", dtype=dt)
    k, v = torch.randn(400, 100, 2, D, device="cuda", dtype=dt), torch.randn(400, 100, 2, D, device="cuda", dtype=dt)
    pk, pv = torch.randn(1, 70, 2, D, device="cuda", dtype=dt), torch.randn(1, 70, 2, D, device="cuda", dtype=dt)
    sl = torch.randint(0, 101, (400,), device="cuda", dtype=torch.int32)
    sl[::7] = 0
    o = tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl, overlap=False)
    vis = torch.cat([torch.ones(400, 1, 70, dtype=torch.bool, device="cuda"),
                     torch.arange(100, device="cuda")[None, None] < sl.long()[:, None, None]], -1)
    r = ref(q, torch.cat([pk.expand(400, -1, -1, -1), k], 1), torch.cat([pv.expand(400, -1, -1, -1), v], 1), vis)
    print(f"decode D{D} 800 blocks + prefix: max err {(o.double() - r).abs().max().item():.3e}")
    # the same step co-run: the prefix's persistent grid on 3 SMs beside the decode (side stream), then the merge
    o = tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl, prefix_sms=3)
    print(f"co-run D{D} prefix on 3 SMs: max err {(o.double() - r).abs().max().item():.3e}")
    if D == 128:   # the decode inside the prefix kernel: 800 units over a one-wave grid beside 26 prefix items
        o = tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl, prefix_decode=True)
        print(f"prefix_decode D{D}: max err {(o.double() - r).abs().max().item():.3e}, NaN {int(o.isnan().sum())}")
    # 64-key caches read in place from the 100-key ones (one tile a block: the one-stage kernel), prefix merged in
    sl64 = sl.clamp(max=64)
    o = tkh.hydragen_attention_nopad(q, k[:, :64], v[:, :64], [pk], [pv], sl64, overlap=False)
    vis = torch.cat([vis[..., :70], torch.arange(64, device="cuda")[None, None] < sl64.long()[:, None, None]], -1)
    r = ref(q, torch.cat([pk.expand(400, -1, -1, -1), k[:, :64]], 1),
            torch.cat([pv.expand(400, -1, -1, -1), v[:, :64]], 1), vis)
    print(f"decode D{D} 800 one-tile blocks + prefix: max err {(o.double() - r).abs().max().item():.3e}")
torch.cuda.synchronize()
print("sanitize_small done")
