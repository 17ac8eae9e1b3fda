"""Per-item timestamps of the prefix kernel (warpgroup 0, thread 0; %globaltimer ns): where does an item's time go?
Columns per item: gather (item start -> Q gathered), first (-> first K tile there), loop (-> last P V done),
epilogue (-> o and lse stored). Per SM: the gap between one item's end and the next's start, and the kernel's span."""
import statistics, sys
import torch
from tkprefix import tk_hydragen as tkh

dev = torch.device("cuda")
n_sm = torch.cuda.get_device_properties(0).multi_processor_count
ext = tkh._ext()
VARIANTS = {"base": (False, 0), "persist": (False, n_sm), "both": (True, n_sm), "overlap": (True, 0)}
print("shape,variant,items,span_us,gather_us,first_us,loop_us,epi_us,gap_us,first_start_spread_us,last_end_spread_us,"
      "epi_pre_us,epi_store_o_us,epi_post_us")
for (B, Hq, Hkv, P, cw) in ((1024, 32, 8, 2048, 2), (1024, 32, 8, 8192, 2), (1024, 32, 8, 2048, 3), (512, 32, 8, 1024, 2), (2048, 8, 1, 4096, 2)):
    q = torch.randn(B, 1, Hq, 128, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, P, Hkv, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    m_blocks = -(-(B * Hq // Hkv) // (64 * cw))
    n_items = m_blocks * Hkv
    for name, (ov, mb) in VARIANTS.items():
        tkh.PREFIX_OVERLAP, tkh.PREFIX_MAX_BLOCKS = ov, mb
        for _ in range(3):
            tkh.prefix_attention(q, k, v, n_splits=1, consumer_warpgroups=cw)
        buf = torch.zeros(n_items * 8, dtype=torch.int64, device=dev)
        ext.prefix_set_trace(buf.data_ptr())
        tkh.prefix_attention(q, k, v, n_splits=1, consumer_warpgroups=cw)
        torch.cuda.synchronize()
        ext.prefix_set_trace(0)
        tr = buf.view(n_items, 8).cpu().tolist()
        t0 = min(r[1] for r in tr)
        us = lambda x: x / 1e3
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        gather = med([us(r[2] - r[1]) for r in tr])
        first = med([us(r[3] - r[2]) for r in tr])
        loop = med([us(r[4] - r[3]) for r in tr])
        epi = med([us(r[5] - r[4]) for r in tr])
        by_sm = {}
        for r in tr:
            by_sm.setdefault(r[0], []).append(r)
        gaps = []
        for rs in by_sm.values():
            rs.sort(key=lambda r: r[1])
            gaps += [us(b[1] - a[5]) for a, b in zip(rs, rs[1:])]
        firsts = [us(min(r[1] for r in rs) - t0) for rs in by_sm.values()]
        lasts = [us(max(r[5] for r in rs) - t0) for rs in by_sm.values()]
        span = max(lasts)
        print(f"B{B} {Hq}/{Hkv} P{P} cw{cw},{name},{n_items},{span:.1f},{gather:.2f},{first:.2f},{loop:.2f},{epi:.2f},"
              f"{med(gaps):.2f},{max(firsts):.2f},{max(lasts) - min(lasts):.2f},{med([us(r[6] - r[4]) for r in tr]):.2f},"
              f"{med([us(r[7] - r[6]) for r in tr]):.2f},{med([us(r[5] - r[7]) for r in tr]):.2f}", flush=True)
        if name == "base" and P == 2048 and cw == 2:
            for r in sorted(tr, key=lambda r: (r[0], r[1]))[:12]:
                print("  raw sm", r[0], [round(us(x - t0), 2) for x in r[1:8]], file=sys.stderr)
tkh.PREFIX_OVERLAP, tkh.PREFIX_MAX_BLOCKS = False, 0
