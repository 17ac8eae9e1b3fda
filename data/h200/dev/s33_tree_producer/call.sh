#!/usr/bin/env bash
# Session 33: the tree's wgmma kernel with producer warps and mbarriers (branch s33-tree-producer, "this": a producer
# warpgroup beside two consumer warpgroups, one warp beside one) against main's kernels ("head": $V/v/head, main at
# ca37e5d) and "p1" ($V/v/p1: one producer warp always; call 1 ran it as "this", with "s4", 4 stages). Builds the tree
# family for each; mbar_probe.cu under racecheck (does the tool follow mbarrier hand-offs?); the GPU tree tests on
# this; the c8 harness on tk_tree (head, p1, this; then head, this), with `tkprefix compare` against head; racecheck
# and memcheck of the tree's small cases on this; ncu metrics of wide4096's tree_attend_kernel on this.
# Returns $OUT/call.log and $OUT/results.tgz.
# Stops itself at $DL s. From the repository root of a checkout of the branch, with $V carried:
#   DL=260 V=.dev/s33 bash data/h200/dev/s33_tree_producer/call.sh   (call 3: STEP=quick DL=115)
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
L=$OUT/call.log R=/tmp/s33_producer
rm -rf $R && mkdir -p $R
VARS="head p1 this"
c8() {  # c8 VARIANT ROUND: the harness on c8, tk_tree only
  [ $(left) -gt 40 ] || { echo "bench c8 $1 $2: skipped at $(el) s (deadline)"; return; }
  env $(kenv tree $1) timeout 100 python3 -m tkprefix.cli bench --only c8 --impls tk_tree --out $R/c8_$1_$2 \
    > $R/bench_$1_$2.log 2>&1
  echo "bench c8 $1 $2 rc=$? at $(el) s: $(tail -1 $R/bench_$1_$2.log)"
}
cmp8() {  # cmp8 ROUND VARIANT: VARIANT / head, per row
  local c=$R/cmp_$2_$1
  [ -d $R/c8_head_$1 ] && [ -d $R/c8_$2_$1 ] || return
  python3 -m tkprefix.cli compare $R/c8_head_$1 $R/c8_$2_$1 --csv $c.csv --json $c.json > $c.log 2>&1
  echo "compare round $1 rc=$? (B = $2, A = head; < 1: $2 faster):"; tail -6 $c.log
  python3 - $c.csv <<'PY' 2>&1 | head -32
import sys, pandas as pd
d = pd.read_csv(sys.argv[1])
cols = [c for c in ("batch", "prefix", "suffix", "dtype", "graph", "a_us", "b_us", "ratio") if c in d.columns]
print(d[cols].to_string(index=False))  # batch = leaves: 64 sample64, 30 tot4, 512 binary10, 1024 wide1024, ...
PY
}
tests() {  # tests VARIANT
  env $(kenv tree $1) timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_tree.py \
    > $R/pytest_$1.log 2>&1
  echo "pytest $1 rc=$? at $(el) s: $(tail -1 $R/pytest_$1.log 2>&1)"
  grep -m8 -E "^FAILED|^ERROR|Error" $R/pytest_$1.log
}
san() {  # san TOOL: compute-sanitizer over the tree's small sanitizer cases, on this
  [ $(left) -gt 30 ] || { echo "$1: skipped at $(el) s (deadline)"; return; }
  env $(kenv tree this) timeout $(( $(left) - 20 )) $CS --tool $1 --print-limit 20 python3 -m pytest -q \
    -p no:cacheprovider tests/gpu/test_tk_tree.py -k sanitizer_small > $R/san_$1.log 2>&1
  echo "$1 rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_$1.log) $(tail -1 $R/san_$1.log)"
}
MET=gpu__time_duration.sum,dram__bytes_read.sum,lts__t_sector_hit_rate.pct
MET=$MET,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed
ncu8() {  # ncu8 VARIANT TREE: metrics of the third eager call's tree_attend_kernel
  [ $(left) -gt 50 ] || { echo "ncu $1 $2: skipped at $(el) s (deadline)"; return; }
  env $(kenv tree $1) TREE=$2 timeout 60 ncu -k regex:tree_attend_kernel -s 2 -c 1 --metrics $MET \
    python3 $HERE/../s29_tree_ncu/ncu_tree.py > $R/ncu_$1_$2.txt 2>&1
  echo "ncu $1 $2 rc=$? at $(el) s"; grep -E "^$2|__" $R/ncu_$1_$2.txt
}
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
diff -rq kernels $V/v/head | head -8; diff -rq kernels $V/v/p1 | head -8
if [ "${STEP:-all}" = quick ]; then  # call 3 (two producer warps beside one consumer warpgroup): head and this
  VARS="head this"; kbuild tree 8 100 $VARS
  tests this; for v in $VARS; do c8 $v 1; done; cmp8 1 this
else
  kbuild tree 5 200 $VARS
  cp /tmp/build_tree_*.log $R/ 2>/dev/null
  grep -h "spill" /tmp/build_tree_*.log | sort | uniq -c | head -5
  nvcc -arch=sm_90a -o $R/mbar_probe $HERE/mbar_probe.cu > $R/probe_build.log 2>&1
  timeout 60 $CS --tool racecheck $R/mbar_probe > $R/probe_racecheck.log 2>&1
  echo "probe racecheck rc=$?: $(grep -E 'mbar_probe|RACECHECK SUMMARY' $R/probe_racecheck.log)"
  tests this
  for v in $VARS; do c8 $v 1; done; cmp8 1 this; cmp8 1 p1
  san racecheck; san memcheck
  for v in head this; do c8 $v 2; done; cmp8 2 this
  ncu8 this wide4096; ncu8 this binary10
fi
) >> $L 2>&1
echo "done at $(el) s" >> $L
tar czf $OUT/results.tgz -C /tmp s33_producer 2>> $L
cat $L
