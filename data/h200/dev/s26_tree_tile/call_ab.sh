#!/usr/bin/env bash
# Session 26 (prepared on a CPU-only session, to run in the next one with a GPU; see README.md): A/B of the tree's
# block-per-unit decode kernel (this: the checkout's kernels/, branch s26-tree-tile) against main's warp-per-unit one
# (head: $V/v/head), through the harness on c8 (tk_tree only, alternated twice), then the tree family's GPU tests on
# this build and compute-sanitizer racecheck + memcheck on its small cases. Stops itself at $DL s. From the
# repository root of the branch's checkout:   DL=560 bash data/h200/dev/s26_tree_tile/call_ab.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
L=$OUT/call.log
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild tree 8 180 head this
for i in 1 2; do for v in head this; do
  [ $(left) -gt 60 ] || break 2
  env $(kenv tree $v) timeout 120 python3 -m tkprefix.cli bench --only c8 --impls tk_tree --out $OUT/c8_${v}_$i \
    > $OUT/bench_${v}_$i.log 2>&1
  echo "bench $v $i rc=$? at $(el) s: $(tail -1 $OUT/bench_${v}_$i.log)"
done; done
for i in 1 2; do
  [ -d $OUT/c8_this_$i ] && python3 -m tkprefix.cli compare $OUT/c8_head_$i $OUT/c8_this_$i 2>&1 | tail -20
done
[ $(left) -gt 15 ] && env $(kenv tree this) timeout $(left) python3 -m pytest -q tests/gpu/test_tk_tree.py \
  > /tmp/pytest_this.log 2>&1
echo "pytest this rc=$? at $(el) s: $(tail -1 /tmp/pytest_this.log)"; grep -m5 -E "^FAILED|Error" /tmp/pytest_this.log
for tool in racecheck memcheck; do
  [ $(left) -gt 15 ] || break
  env $(kenv tree this) timeout $(left) $CS --tool $tool --print-limit 20 python3 -m pytest -q -p no:cacheprovider \
    tests/gpu/test_tk_tree.py -k sanitizer_small > /tmp/san_this_$tool.log 2>&1
  echo "$tool this rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/san_this_$tool.log)"
  cp /tmp/san_this_$tool.log $OUT/
done
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
