#!/usr/bin/env bash
# Session 23, call 1: the decode kernel's packed items (this commit's kernels/ and src/) against head (the commit
# before: .dev/s23/head holds its src/ and kernels/). One hydragen-only build each; ab_pack.py alternated twice; the
# GPU tests of tk_hydragen; memcheck and racecheck on sanitize_small.py. Logged as it happens.
set -u
HERE=$(dirname "$0")
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s23/third_party.tgz
venv() {   # the environment of build $1 (new: this tree; head: .dev/s23/head)
  if [ "$1" = head ]; then R=$PWD/.dev/s23/head; else R=$PWD; fi
  echo "PYTHONPATH=$R/src TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$R/kernels TKPREFIX_BUILD_DIR=/tmp/b_$1"
}
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in head new; do
  ( env $(venv $v) MAX_JOBS=8 timeout 200 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s"; tail -3 /tmp/build_$v.log ) &
done
wait
echo "tag,kind,B,Hq,Hkv,P,S,pack,items_per_block,median_us,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in head new; do
  env $(venv $v) TAG=$v timeout 90 python3 $HERE/ab_pack.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
env $(venv new) timeout 120 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > $OUT/pytest_new.log 2>&1
echo "pytest new rc=$? at $(el) s: $(tail -1 $OUT/pytest_new.log)"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in memcheck racecheck; do
  env $(venv new) timeout 150 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py \
    > $OUT/san_${tool}_new.log 2>&1
  echo "$tool new rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_${tool}_new.log)"
done
) >> $L 2>&1
echo "done at $(el) s" >> $L
