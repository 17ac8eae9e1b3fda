#!/usr/bin/env bash
# Session 26 (prepared on a CPU-only session, to run in the next one with a GPU; see README.md): A/B of the one-tile
# decode at <= 16 rows (fs: this tree's kernels/, branch s26-decode-feature-split = main + q_smem.patch +
# one_tile.patch) against head (main's kernels, v/head) and qs5 (main + q_smem.patch, v/qs5). Then the GPU tests of
# tk_hydragen on fs (with its new test_decode_one_tile_rows), racecheck + memcheck on fs, and, time allowing, racecheck
# on qs5 (its fallback). Stops itself at $DL s. Run from the repository root of the branch's checkout:
#   DL=560 bash data/h200/dev/s26_decode_one_tile/call_ab.sh      (V: the folder holding v/head and v/qs5)
set -u
HERE=$(dirname "$0"); V=${V:-.dev/s27}; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DL - $(el) )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf $V/third_party.tgz
kdir() { [ "$1" = fs ] && echo "$PWD/kernels" || echo "$PWD/$V/v/$1"; }
kenv() { echo "TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$(kdir $1) TKPREFIX_BUILD_DIR=/tmp/b_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in head qs5 fs; do
  ( env $(kenv $v) MAX_JOBS=5 timeout 120 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s"; tail -2 /tmp/build_$v.log ) &
done
wait
echo "tag,kind,seq_len,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in head qs5 fs; do
  [ $(left) -gt 15 ] || break 2
  env $(kenv $v) TAG=$v timeout 30 python3 $HERE/../s24_decode_issue/ab_decode.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
[ $(left) -gt 15 ] && env $(kenv fs) timeout $(left) python3 -m pytest -q tests/gpu/test_tk_hydragen.py \
  > /tmp/pytest_fs.log 2>&1
echo "pytest fs rc=$? at $(el) s: $(tail -1 /tmp/pytest_fs.log)"; grep -m5 -E "^FAILED|Error" /tmp/pytest_fs.log
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for vt in fs:racecheck fs:memcheck qs5:racecheck; do
  v=${vt%%:*}; tool=${vt#*:}
  [ $(left) -gt 15 ] || break
  env $(kenv $v) timeout $(left) $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py \
    > /tmp/san_${v}_$tool.log 2>&1
  echo "$tool $v rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/san_${v}_$tool.log)"
  cp /tmp/san_${v}_$tool.log $OUT/
done
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
