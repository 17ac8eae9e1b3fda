#!/usr/bin/env bash
# Session 27 (prepared on a CPU-only session, to run in a later one with a GPU; see README.md): programmatic
# dependent launch on and off in one build (this: the checkout's kernels/, branch s27-pdl), ab_pdl.py twice, and once
# on a build without the early trigger (notrigger: the launch_dependents calls removed, so a dependent starts only as
# the kernel before ends: the launch gap alone); the GPU tests of tk_hydragen on this (PDL on, the module's default);
# a negative control: a build with the griddepcontrol.wait calls removed (nowait) must FAIL
# test_pdl_launches_wait_for_the_kernel_before; memcheck on sanitize_small.py. Stops itself at $DL s. From the
# repository root:   DL=450 bash data/h200/dev/s27_pdl/call_ab.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
L=$OUT/call.log
for v in nowait notrigger; do rm -rf $V/v/$v && mkdir -p $V/v/$v && cp -r kernels/. $V/v/$v/; done
sed -i '/wait_for_prior_grid();/d' $V/v/nowait/hydragen/decode.cu $V/v/nowait/hydragen/merge.cu
sed -i '/allow_dependents();/d' $V/v/notrigger/hydragen/decode.cu $V/v/notrigger/hydragen/prefix.cu
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
grep -c "wait_for_prior_grid();\|allow_dependents();" kernels/hydragen/*.cu $V/v/no*/hydragen/*.cu
kbuild hydragen 8 200 this nowait notrigger
echo "tag,pdl,kind,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab.csv
for v in this notrigger this; do
  [ $(left) -gt 60 ] || break
  env $(kenv hydragen $v) TAG=$v timeout 90 python3 $HERE/ab_pdl.py >> $OUT/ab.csv 2>>$OUT/ab.err
  echo "ab $v rc=$? at $(el) s"
done
# must fail on the results (NaN or wrong rows in all three paths), not by a build error, a skip or the deadline
if [ $(left) -gt 30 ]; then
  env $(kenv hydragen nowait) timeout 60 python3 -m pytest -q -p no:cacheprovider \
    tests/gpu/test_tk_hydragen.py -k pdl_launches > /tmp/pytest_nowait.log 2>&1; rc=$?
  s=$(tail -1 /tmp/pytest_nowait.log)
  n=$(grep -cE "^E +AssertionError: PDL (fused|split|prefix_split)" /tmp/pytest_nowait.log)
  ok=no; [ $rc = 1 ] && echo "$s" | grep -q "3 failed" && ! echo "$s" | grep -qi error && [ $n -ge 3 ] && ok=yes
  echo "negative control (nowait; must fail on the results) rc=$rc assertions=$n as_expected=$ok at $(el) s: $s"
  cp /tmp/pytest_nowait.log $OUT/
else
  echo "negative control SKIPPED (deadline) at $(el) s"
fi
[ $(left) -gt 15 ] && env $(kenv hydragen this) timeout $(left) python3 -m pytest -q -p no:cacheprovider \
  tests/gpu/test_tk_hydragen.py > /tmp/pytest_this.log 2>&1
echo "pytest this rc=$? at $(el) s: $(tail -1 /tmp/pytest_this.log)"; grep -m5 -E "^FAILED|Error" /tmp/pytest_this.log
cp /tmp/pytest_this.log $OUT/
[ $(left) -gt 15 ] && env $(kenv hydragen this) timeout $(left) $CS --tool memcheck --print-limit 20 \
  python3 scripts/device/sanitize_small.py > /tmp/san_this_memcheck.log 2>&1
echo "memcheck this rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY' /tmp/san_this_memcheck.log)"
cp /tmp/san_this_memcheck.log $OUT/
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
