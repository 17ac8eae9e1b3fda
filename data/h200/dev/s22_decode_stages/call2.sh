#!/usr/bin/env bash
# Prepared for the next session (not run in session 22): the co-run step at 8 prefix SM counts, head against st3
# (variants.py; folders carried in .dev/s22/v), corun_sms.py alternated twice; then st3's racecheck, which call 1's
# limit cut. About 250 s.
set -u
HERE=$(dirname "$0")
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s22/third_party.tgz
V="head st3"
kenv() { echo "TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s22/v/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in $V; do
  ( env $(kenv $v) MAX_JOBS=8 timeout 200 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s" ) &
done
wait
echo "tag,Hq,Hkv,B,P,S,n_p,auto_n_p,median_us,rel_err" > $OUT/corun.csv
for i in 1 2; do for v in $V; do
  env $(kenv $v) TAG=$v timeout 90 python3 $HERE/corun_sms.py >> $OUT/corun.csv 2>>$OUT/corun.err
  echo "corun $v rc=$? at $(el) s"
done; done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
env $(kenv st3) timeout 100 $CS --tool racecheck --print-limit 20 python3 scripts/device/sanitize_small.py \
  > $OUT/san_racecheck_st3.log 2>&1
echo "racecheck st3 rc=$? at $(el) s: $(grep -E 'RACECHECK SUMMARY' $OUT/san_racecheck_st3.log)"
) >> $L 2>&1
echo "done at $(el) s" >> $L
