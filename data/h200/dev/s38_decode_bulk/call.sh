#!/usr/bin/env bash
# Session 38, device calls on any GPU. From the repository root, with third_party/ThunderKittens and .dev/s38 carried
# (.dev/s38/v/*: `git archive 1e47063 kernels` with s37's trace_stamps.patch, each variant as README says):
#   call 1:          DL=<s> V=.dev/s38 bash data/h200/dev/s38_decode_bulk/call.sh   (`this` = decode_bulk.patch applied)
#   call 2, OVL=1|2: OVL=1 DL=<s> V=.dev/s38 bash ...                               (`this` = dec_overlap.patch applied)
# 1. builds (call 2: also the new past-seq_len test under rec); 2. the prefix_decode GPU tests under this;
# 3. fused_trace.py per variant (call 1: rec/idle/idle3/bulk twice; OVL=1: ovl once; OVL=2: none); 4. the A/B, rec
# against this, alternated (call 1: s35's ab.py; call 2: ab_noauto.py, one pass at OVL=2); 5. memcheck and racecheck
# of sanitize_small.py under this; 6. the whole Hydragen GPU test file under this. Logs in $OUT; summaries on stdout.
set -u
HERE=$(dirname "$0"); AB=$HERE/../s35_prefix_decode
source $HERE/../s26_call_lib.sh   # el, left (against DL), kenv/kbuild, the build environment, CS
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
ABPY=$AB/ab.py PASSES="1 2" TRACE_MIN=200 AB_MIN=150
if [ "${OVL:-0}" != 0 ]; then   # OVL=2: no trace (one build less), one A/B pass
  TRACE="ovl" PASSES=1 TRACE_MIN=120 AB_MIN=90 ABPY=$HERE/ab_noauto.py
  if [ "$OVL" = 2 ]; then TRACE="" AB_MIN=80; kbuild hydragen 8 240 rec this; else kbuild hydragen 8 240 rec ovl this; fi
  env $(kenv hydragen rec) timeout 60 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py \
    -k "prefix_decode_ignores" > $OUT/pytest_past_rec.log 2>&1
  echo "pytest past seq_len under rec rc=$?: $(tail -1 $OUT/pytest_past_rec.log)"
  grep -E "^E |^FAILED" $OUT/pytest_past_rec.log | head -20
else TRACE="rec idle idle3 bulk"; kbuild hydragen 6 240 rec idle idle3 bulk this; fi
grep -hE "spill" /tmp/build_hydragen_this.log | grep -v " 0 bytes spill" | head -4
env $(kenv hydragen this) timeout 150 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py \
  -k prefix_decode > $OUT/pytest_pd.log 2>&1
echo "pytest prefix_decode rc=$? at $(el) s: $(tail -1 $OUT/pytest_pd.log)"
grep -E "^E |^FAILED" $OUT/pytest_pd.log | head -30
for i in $PASSES; do for v in $TRACE; do
  [ $(left) -gt $TRACE_MIN ] || break 2
  env $(kenv hydragen $v) timeout 60 python3 $HERE/fused_trace.py $v >> $OUT/trace.csv 2> $OUT/trace_$v.err
  echo "trace $v $i rc=$? at $(el) s"
done; done
cat $OUT/trace.csv
for i in 1 2; do for v in rec this; do
  [ $(left) -gt $AB_MIN ] || break 2
  [ "${OVL:-0}" = 2 ] && [ $i = 2 ] && break 2
  env $(kenv hydragen $v) timeout 90 python3 $ABPY $OUT/ab_${v}_$i.csv 30 > $OUT/ab_${v}_$i.log 2>&1
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
env $(kenv hydragen this) timeout $(( $(left) > 30 ? $(left) : 30 )) python3 -m pytest -q -p no:cacheprovider -x \
  tests/gpu/test_tk_hydragen.py > $OUT/pytest_all.log 2>&1
echo "pytest hydragen rc=$? at $(el) s: $(tail -1 $OUT/pytest_all.log)"
grep -E "^FAILED" $OUT/pytest_all.log | head -5
