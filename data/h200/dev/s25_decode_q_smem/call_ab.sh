#!/usr/bin/env bash
# Session 25, A/B: Q through shared memory in the one-stage decode (qs: 4 blocks an SM; qs5: 5, at 96 registers)
# against head (222724f... kernels of 0b22583). Hydragen-only builds in parallel; ab_decode.py alternated; the GPU
# tests of tk_hydragen on qs and qs5; memcheck (and racecheck, time allowing) on qs5. Stops itself at $DL s.
set -u
HERE=$(dirname "$0"); T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }; left() { echo $(( DL - $(el) )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf $HERE/third_party.tgz
kenv() { echo "TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/$HERE/v/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in head qs qs5; do
  ( env $(kenv $v) MAX_JOBS=5 timeout 120 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s"; tail -2 /tmp/build_$v.log ) &
done
wait
echo "tag,kind,seq_len,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in head qs qs5; do
  [ $(left) -gt 15 ] || break 2
  env $(kenv $v) TAG=$v timeout 30 python3 $HERE/ab_decode.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
for v in qs5 qs; do
  [ $(left) -gt 15 ] || break
  env $(kenv $v) timeout $(left) python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > /tmp/pytest_$v.log 2>&1
  echo "pytest $v rc=$? at $(el) s: $(tail -1 /tmp/pytest_$v.log)"; grep -m3 -E "^FAILED|Error" /tmp/pytest_$v.log
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in memcheck racecheck; do
  [ $(left) -gt 15 ] || break
  env $(kenv qs5) timeout $(left) $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py \
    > /tmp/san_$tool.log 2>&1
  echo "$tool qs5 rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/san_$tool.log)"
done
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
