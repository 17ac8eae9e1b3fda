#!/usr/bin/env bash
# Session 37: the prefix kernel's decode warpgroup with a ring of three K/V matrices and two Q buffers (prefix_decode.cuh),
# against main before it (rec = .dev/s37/v/rec, `git archive 50e862b kernels`). From the repository root, with
# third_party/ThunderKittens and .dev/s37 carried:
#   DL=<s> V=.dev/s37 bash data/h200/dev/s37_decode_ring/call.sh
# 1. builds both, 2. the prefix_decode GPU tests (this), 3. the A/B of s35 (ab.py: step, fused, prefix, decode per
# shape) under rec and this, alternated, 4. compute-sanitizer memcheck and racecheck of sanitize_small.py, 5. ncu of
# one fused launch (c3 B2048 32/8 P4096 S64), 6. the whole Hydragen GPU test file. Logs in $OUT.
set -u
HERE=$(dirname "$0"); AB=$HERE/../s35_prefix_decode
source $HERE/../s26_call_lib.sh   # el, left (against DL), kenv/kbuild, the build environment, CS
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild hydragen 8 200 rec this
grep -hE "spill" /tmp/build_hydragen_this.log | grep -v " 0 bytes spill" | head -4
env $(kenv hydragen this) timeout 150 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py \
  -k prefix_decode > $OUT/pytest_pd.log 2>&1
echo "pytest prefix_decode rc=$? at $(el) s: $(tail -1 $OUT/pytest_pd.log)"
grep -E "^FAILED|Error|assert" $OUT/pytest_pd.log | head -12
for i in 1 2; do for v in rec this; do
  [ $(left) -gt 150 ] || break 2
  env $(kenv hydragen $v) timeout 90 python3 $AB/ab.py $OUT/ab_${v}_$i.csv 30 > $OUT/ab_${v}_$i.log 2>&1
  echo "ab $v $i rc=$? at $(el) s: $(tail -1 $OUT/ab_${v}_$i.log)"
done; done
python3 - $OUT <<'PY'
import csv, glob, statistics, sys
t = {}
for f in sorted(glob.glob(sys.argv[1] + "/ab_*_*.csv")):
    v = f.split("/")[-1].split("_")[1]
    for r in csv.DictReader(open(f)):
        t.setdefault(tuple(r[c] for c in ("B", "Hq", "Hkv", "P", "S")), {}).setdefault(v, []).append(r)
print("B Hq Hkv P S | step fused_rec fused_this prefix decode | this/rec this/step")
ratios = []
for key, by in t.items():
    med = lambda v, c: statistics.median(float(r[c]) for r in by.get(v, [])) if by.get(v) else float("nan")
    step = statistics.median([float(r["step_us"]) for v in by for r in by[v]])
    fr, ft = med("rec", "fused_us"), med("this", "fused_us")
    ratios.append(ft / fr)
    print(*key, "|", round(step, 1), round(fr, 1), round(ft, 1), round(med("this", "prefix_us"), 1),
          round(med("this", "decode_us"), 1), "|", round(ft / fr, 3), round(ft / step, 3))
print("geomean fused this/rec:", round(statistics.geometric_mean(ratios), 4))
PY
for t in memcheck racecheck; do
  env $(kenv hydragen this) timeout 150 $CS --tool $t --print-limit 20 python3 scripts/device/sanitize_small.py \
    > $OUT/san_$t.log 2>&1 &
done
wait
for t in memcheck racecheck; do
  echo "$t at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$t.log) $(grep -c 'max err' $OUT/san_$t.log) cases"
done
if [ $(left) -gt 60 ]; then
  env $(kenv hydragen this) timeout 50 ncu --kernel-name regex:prefix_kernel --launch-skip 1 --launch-count 1 \
    --section SpeedOfLight --metrics sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum \
    python3 $AB/ncu_one.py > $OUT/ncu.log 2>&1
  echo "ncu rc=$? at $(el) s"; grep -E "Duration|Throughput|hmma|dram__" $OUT/ncu.log | head -12
fi
env $(kenv hydragen this) timeout $(( $(left) > 30 ? $(left) : 30 )) python3 -m pytest -q -p no:cacheprovider -x \
  tests/gpu/test_tk_hydragen.py > $OUT/pytest_all.log 2>&1
echo "pytest hydragen rc=$? at $(el) s: $(tail -1 $OUT/pytest_all.log)"
grep -E "^FAILED" $OUT/pytest_all.log | head -5
