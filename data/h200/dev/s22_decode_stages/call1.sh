#!/usr/bin/env bash
# Session 22, call 1: the decode kernel's ring at 2, 3 and 4 stages against head (variants.py; folders carried in
# .dev/s22/v). One hydragen-only build each; ab_decode.py alternated twice; GPU tests on st3, st2, st4; memcheck and
# racecheck on st3. Everything is logged as it happens, so a cut call still brings back what it finished.
set -u
HERE=$(dirname "$0")   # this folder, or its copy in .dev/s22 (the call ran from there)
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s22/third_party.tgz
V="head st2 st3 st4"
kenv() { echo "TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s22/v/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in $V; do
  ( env $(kenv $v) MAX_JOBS=4 timeout 200 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s" ) &
done
wait
echo "tag,B,Hq,Hkv,S,median_us,tb_s,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in $V; do
  env $(kenv $v) TAG=$v timeout 60 python3 $HERE/ab_decode.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
for v in st3 st2 st4; do
  env $(kenv $v) timeout 60 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > $OUT/pytest_$v.log 2>&1
  echo "pytest $v rc=$? at $(el) s: $(tail -1 $OUT/pytest_$v.log)"
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in memcheck racecheck; do
  env $(kenv st3) timeout 100 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py \
    > $OUT/san_${tool}_st3.log 2>&1
  echo "$tool st3 rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_${tool}_st3.log)"
done
) >> $L 2>&1
echo "done at $(el) s" >> $L
