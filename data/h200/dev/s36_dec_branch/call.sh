#!/usr/bin/env bash
# Session 36: does the prefix kernel's decode-warpgroup branch cost the kernels without it? At 444c4fd (recorded in
# data/h100) `if (wg == DECODE_WG)` stays in the DEC=false kernels as a runtime test and reorders their code; with
# `DEC && wg == DECODE_WG` their SASS is instruction for instruction that of 45a102e (cuobjdump, here). Builds rec
# (.dev/s36b/v/rec = `git archive 444c4fd kernels`) and this tree's kernels, then ab_s0.py alternated
# rec/this/rec/this; then, time left, ncu --set full of the fused kernel on c3 B2048 S64 (ncu_fused.py; $OUT/fused_*.ncu-rep).
# From the repository root, third_party/ThunderKittens and .dev/s36b carried:
#   DL=240 V=.dev/s36b bash data/h200/dev/s36_dec_branch/call.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild hydragen 8 150 rec this
echo "tag,B,Hq,Hkv,P,S,median_us" > $OUT/ab_s0.csv
for i in 1 2; do for v in rec this; do
  [ $(left) -gt 25 ] || break 2
  env $(kenv hydragen $v) TAG=$v timeout 60 python3 $HERE/ab_s0.py >> $OUT/ab_s0.csv 2>> $OUT/ab.err
  echo "ab_s0 $v rc=$? at $(el) s"
done; done
python3 - $OUT/ab_s0.csv <<'PY'
import csv, statistics, sys
t = {}
for r in csv.DictReader(open(sys.argv[1])):
    t.setdefault((r["B"], r["Hq"], r["Hkv"], r["P"], r["S"]), {}).setdefault(r["tag"], []).append(float(r["median_us"]))
for key, by in t.items():
    rec, this = (statistics.median(by.get(v, [float("nan")])) for v in ("rec", "this"))
    print(*key, rec, this, round(this / rec, 3))
PY
for h in 8 32; do   # time left: the fused kernel under ncu --set full (its source counters: the decode's stalls)
  [ $(left) -gt 45 ] || break
  env $(kenv hydragen this) timeout $(( $(left) - 10 )) ncu --kernel-name regex:prefix_kernel --launch-skip 2 \
    --launch-count 1 --set full --import-source no -o $OUT/fused_$h python3 $HERE/ncu_fused.py $h > /tmp/ncu_$h.log 2>&1
  echo "ncu fused $h rc=$? at $(el) s"; tail -2 /tmp/ncu_$h.log
  [ -f $OUT/fused_$h.ncu-rep ] || continue   # as text too: the sections, and per-instruction SASS with stall samples
  ncu -i $OUT/fused_$h.ncu-rep --page details > $OUT/fused_$h.details.txt 2>&1
  ncu -i $OUT/fused_$h.ncu-rep --page source --csv --print-source sass > $OUT/fused_$h.sass.csv 2>&1
done
