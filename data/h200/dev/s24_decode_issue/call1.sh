#!/usr/bin/env bash
# Session 24, call 1: the decode kernel's per-item instructions (variants.py; folders carried in .dev/s24/v). One
# hydragen-only build each; ab_decode.py alternated three times over head / lean / early; the GPU tests of tk_hydragen
# on early; the NaN-past-seq_len test on nozero (must fail) and head; memcheck and racecheck on sanitize_small.py
# with early; ncu of the decode alone at S64 with seq_len on head and early. Logged as it happens.
set -u
HERE=$(dirname "$0")
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s24/third_party.tgz
V="head lean early"
kenv() { echo "TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s24/v/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in $V nozero; do
  ( env $(kenv $v) MAX_JOBS=4 timeout 240 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s"; tail -2 /tmp/build_$v.log ) &
done
wait
echo "tag,kind,seq_len,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab.csv
for i in 1 2 3; do for v in $V; do
  env $(kenv $v) TAG=$v timeout 90 python3 $HERE/ab_decode.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
env $(kenv early) timeout 150 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > $OUT/pytest_early.log 2>&1
echo "pytest early rc=$? at $(el) s: $(tail -1 $OUT/pytest_early.log)"
for v in nozero head; do
  env $(kenv $v) timeout 60 python3 -m pytest -q tests/gpu/test_tk_hydragen.py -k past_seq_len > $OUT/pytest_past_$v.log 2>&1
  echo "pytest past_seq_len $v rc=$? at $(el) s: $(tail -1 $OUT/pytest_past_$v.log)"
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in memcheck racecheck; do
  env $(kenv early) timeout 150 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py \
    > $OUT/san_${tool}_early.log 2>&1
  echo "$tool early rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_${tool}_early.log)"
done
SEC="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis"
for v in head early; do for shape in 2048,32,8,64 128,32,32,64; do
  env $(kenv $v) SHAPE=$shape SL=1 timeout 60 ncu -k regex:decode_kernel -s 1 -c 1 --clock-control none $SEC \
    python3 $HERE/ncu_decode.py > $OUT/ncu_${v}_${shape//,/x}.log 2>&1
  echo "ncu $v $shape rc=$? at $(el) s"
done; done
) >> $L 2>&1
echo "done at $(el) s" >> $L
