#!/usr/bin/env bash
# Session 23, call 3: the one-stage decode kernel for one-tile splits (variants.py; folders carried in .dev/s23/v)
# against head. One hydragen-only build each; ../s23_decode_pack/ab_pack.py alternated twice over the builds (the
# decode alone and the Hydragen step at S 64-512); the GPU tests of tk_hydragen on b4; memcheck and racecheck on
# sanitize_small.py with b4. Logged as it happens.
set -u
HERE=$(dirname "$0")
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s23/third_party.tgz
V="head b4 b5"
kenv() { echo "TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s23/v/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in $V; do
  ( env $(kenv $v) MAX_JOBS=5 timeout 200 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s"; tail -2 /tmp/build_$v.log ) &
done
wait
echo "tag,kind,B,Hq,Hkv,P,S,pack,items_per_block,median_us,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in $V; do
  env $(kenv $v) TAG=$v timeout 90 python3 $HERE/../s23_decode_pack/ab_pack.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
env $(kenv b4) timeout 120 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > $OUT/pytest_b4.log 2>&1
echo "pytest b4 rc=$? at $(el) s: $(tail -1 $OUT/pytest_b4.log)"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in memcheck racecheck; do
  env $(kenv b4) timeout 150 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py \
    > $OUT/san_${tool}_b4.log 2>&1
  echo "$tool b4 rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_${tool}_b4.log)"
done
) >> $L 2>&1
echo "done at $(el) s" >> $L
