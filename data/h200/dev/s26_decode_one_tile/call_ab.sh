#!/usr/bin/env bash
# Session 26 (prepared on a CPU-only session, to run in the next one with a GPU; see README.md): A/B of the one-tile
# decode at <= 16 rows (this: the checkout's kernels/, branch s26-decode-feature-split or s26-tree-tile) against head
# (main's kernels, $V/v/head) and qs5 (main + q_smem.patch, $V/v/qs5). Then the GPU tests of tk_hydragen on this
# build (with the one-tile tests), racecheck on the decode-only cases and memcheck on it, racecheck on qs5 (its
# fallback), and, time allowing, racecheck on all of sanitize_small.py. Stops itself at $DL s. From the repository
# root:   DL=560 bash data/h200/dev/s26_decode_one_tile/call_ab.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
L=$OUT/call.log
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild hydragen 5 120 head qs5 this
echo "tag,kind,seq_len,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in head qs5 this; do
  [ $(left) -gt 15 ] || break 2
  env $(kenv hydragen $v) TAG=$v timeout 30 python3 $HERE/../s24_decode_issue/ab_decode.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
[ $(left) -gt 15 ] && env $(kenv hydragen this) timeout $(left) python3 -m pytest -q tests/gpu/test_tk_hydragen.py \
  > /tmp/pytest_this.log 2>&1
echo "pytest this rc=$? at $(el) s: $(tail -1 /tmp/pytest_this.log)"; grep -m5 -E "^FAILED|Error" /tmp/pytest_this.log
# racecheck first on the decode-only cases (2-6 blocks a launch; sanitize_small.py's prefix grids timed it out in
# session 25), then memcheck and, time allowing, racecheck on all of sanitize_small.py
DS=$HERE/sanitize_decode_small.py SS=scripts/device/sanitize_small.py
for vts in this:racecheck:$DS this:memcheck:$SS qs5:racecheck:$DS this:racecheck:$SS; do
  v=${vts%%:*}; ts=${vts#*:}; tool=${ts%%:*}; script=${ts#*:}; log=san_${v}_${tool}_$(basename $script .py).log
  [ $(left) -gt 15 ] || break
  env $(kenv hydragen $v) timeout $(left) $CS --tool $tool --print-limit 20 python3 $script > /tmp/$log 2>&1
  echo "$tool $v $script rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/$log)"
  cp /tmp/$log $OUT/
done
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
