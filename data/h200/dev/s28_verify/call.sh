#!/usr/bin/env bash
# Session 28: the first GPU call for the branches prepared in sessions 25-27 without a GPU, all at once from a
# checkout of s28-verify (s27-pdl, which holds q_smem, one-tile decode, tree tile and PDL, plus this script):
# builds (this: every family from kernels/; head: main's hydragen and tree from $V/v/head; nowait: this with the
# griddepcontrol.wait calls removed), the GPU tests of the three families on this, the A/Bs (ab_decode.py head/this,
# ab_pdl.py, the harness on c8 for tk_tree head/this), the PDL negative control (nowait must fail its test on the
# results), then compute-sanitizer: racecheck on the decode-only cases, memcheck on sanitize_small.py, racecheck and
# memcheck on the tree's small cases; time allowing, a second c8 round and racecheck on all of sanitize_small.py.
# Stops itself at $DL s. From the repository root:   DL=500 bash data/h200/dev/s28_verify/call.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
D24=$HERE/../s24_decode_issue D26=$HERE/../s26_decode_one_tile D27=$HERE/../s27_pdl
ALL=chunk_attn,hydragen,tree
L=$OUT/call.log
rm -rf $V/v/nowait && mkdir -p $V/v/nowait && cp -r kernels/. $V/v/nowait/
sed -i '/wait_for_prior_grid();/d' $V/v/nowait/hydragen/decode.cu $V/v/nowait/hydragen/merge.cu
c8() {  # c8 VARIANT ROUND: the harness on c8, tk_tree only
  [ $(left) -gt 60 ] || return
  env $(kenv $F8 $1) timeout 120 python3 -m tkprefix.cli bench --only c8 --impls tk_tree --out $OUT/c8_$1_$2 \
    > $OUT/bench_$1_$2.log 2>&1
  echo "bench c8 $1 $2 rc=$? at $(el) s: $(tail -1 $OUT/bench_$1_$2.log)"
}
san() {  # san FAMILIES VARIANT TOOL LOGNAME COMMAND...
  local f=$1 v=$2 tool=$3 log=san_$2_$3_$4.log; shift 4
  [ $(left) -gt 15 ] || return
  env $(kenv $f $v) timeout $(left) $CS --tool $tool --print-limit 20 "$@" > /tmp/$log 2>&1
  echo "$tool $v $log rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/$log)"
  cp /tmp/$log $OUT/
}
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
grep -c "wait_for_prior_grid();" kernels/hydragen/*.cu $V/v/nowait/hydragen/*.cu
kbuild $ALL 8 200 this & kbuild hydragen 4 200 head nowait & kbuild tree 4 200 head & wait
[ $(left) -gt 15 ] && env $(kenv $ALL this) timeout 150 python3 -m pytest -q -p no:cacheprovider \
  tests/gpu/test_tk_hydragen.py tests/gpu/test_tk_tree.py tests/gpu/test_tk_chunk.py tests/gpu/test_contract_gpu.py \
  > /tmp/pytest_this.log 2>&1
echo "pytest this rc=$? at $(el) s: $(tail -1 /tmp/pytest_this.log)"; grep -m8 -E "^FAILED|Error" /tmp/pytest_this.log
cp /tmp/pytest_this.log $OUT/
echo "tag,kind,seq_len,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab_decode.csv
for i in 1 2; do for v in head this; do
  [ $(left) -gt 60 ] || break 2
  f=hydragen; [ $v = this ] && f=$ALL
  env $(kenv $f $v) TAG=$v timeout 30 python3 $D24/ab_decode.py >> $OUT/ab_decode.csv 2>>$OUT/ab.err
  echo "ab_decode $v rc=$? at $(el) s"
done; done
echo "tag,pdl,kind,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab_pdl.csv
[ $(left) -gt 60 ] && env $(kenv $ALL this) TAG=this timeout 90 python3 $D27/ab_pdl.py >> $OUT/ab_pdl.csv 2>>$OUT/ab.err
echo "ab_pdl this rc=$? at $(el) s"
F8=tree; c8 head 1; F8=$ALL; c8 this 1
for i in 1; do [ -d $OUT/c8_this_$i ] && python3 -m tkprefix.cli compare $OUT/c8_head_$i $OUT/c8_this_$i 2>&1 | tail -20; done
# must fail on the results (NaN or wrong rows in all three paths), not by a build error, a skip or the deadline
if [ $(left) -gt 30 ]; then
  env $(kenv hydragen nowait) timeout 60 python3 -m pytest -q -p no:cacheprovider \
    tests/gpu/test_tk_hydragen.py -k pdl_launches > /tmp/pytest_nowait.log 2>&1; rc=$?
  s=$(tail -1 /tmp/pytest_nowait.log)
  n=$(grep -cE "^E +AssertionError: PDL (fused|split|prefix_split)" /tmp/pytest_nowait.log)
  ok=no; [ $rc = 1 ] && echo "$s" | grep -q "3 failed" && ! echo "$s" | grep -qi error && [ $n -ge 3 ] && ok=yes
  echo "negative control (nowait; must fail on the results) rc=$rc assertions=$n as_expected=$ok at $(el) s: $s"
  cp /tmp/pytest_nowait.log $OUT/
fi
san $ALL this racecheck decode_small python3 $D26/sanitize_decode_small.py
san $ALL this memcheck small python3 scripts/device/sanitize_small.py
san $ALL this racecheck tree_small python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k sanitizer_small
san $ALL this memcheck tree_small python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k sanitizer_small
F8=tree; c8 head 2; F8=$ALL; c8 this 2
[ -d $OUT/c8_this_2 ] && python3 -m tkprefix.cli compare $OUT/c8_head_2 $OUT/c8_this_2 2>&1 | tail -20
san $ALL this racecheck small python3 scripts/device/sanitize_small.py
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
