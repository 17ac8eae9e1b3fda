"""Session 38: the fused step (prefix_decode=True) against the two-kernel step per shape, from ab_noauto.py's CSVs
(median over the runs given), next to the decode/prefix time ratio that tk_hydragen._prefix_decode_auto thresholds
(_part_times), sorted by that ratio; writes the medians as one CSV in s36's ab.csv columns.
    python3 fit_rule.py OUT.csv RUN.csv [RUN.csv ...]"""
import csv
import statistics
import sys

import torch

from tkprefix import tk_hydragen as tkh

by = {}
for path in sys.argv[2:]:
    for r in csv.DictReader(open(path)):
        by.setdefault(tuple(int(r[c]) for c in ("B", "Hq", "Hkv", "P", "S")), []).append(r)
m = lambda *sh: torch.empty(*sh, dtype=torch.bfloat16, device="meta")
rows = []
for (B, Hq, Hkv, P, S), rs in by.items():
    med = {c: statistics.median(float(r[c]) for r in rs)
           for c in ("step_us", "fused_us", "prefix_us", "decode_us")}
    t_p, t_d = tkh._part_times(m(B, 1, Hq, 128), m(B, S, Hkv, 128), [(m(1, P, Hkv, 128), m(1, P, Hkv, 128))])
    rows.append((t_d / t_p, B, Hq, Hkv, P, S, med, max(float(r["rel_diff"]) for r in rs)))
rows.sort()
print("t_d/t_p B Hq Hkv P S | step fused prefix decode | fused/step")
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["B", "Hq", "Hkv", "P", "S", "step_us", "fused_us", "prefix_us", "decode_us", "fused_over_step",
                "rel_diff"])
    for ratio, B, Hq, Hkv, P, S, med, rel in rows:
        fs = med["fused_us"] / med["step_us"]
        print(f"{ratio:.3f} {B} {Hq} {Hkv} {P} {S} | {med['step_us']:.1f} {med['fused_us']:.1f} "
              f"{med['prefix_us']:.1f} {med['decode_us']:.1f} | {fs:.3f}")
        w.writerow([B, Hq, Hkv, P, S] + [round(med[c], 2) for c in ("step_us", "fused_us", "prefix_us", "decode_us")]
                   + [round(fs, 4), f"{rel:.2e}"])
