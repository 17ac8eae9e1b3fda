#!/usr/bin/env bash
# Session 34, call 3: the recording of 45a102e resumed on a fresh machine. Call 2 (an H100) ran env, build, check,
# build_peers, c8, c7, e2e, c4, c5 and c1, stopped at its deadline in c3, and the machine left before the second call.
# If this machine is an H100: rebuild this commit's kernels and peers with the pipeline's own commands, restore call 2's
# results/ ($V/results.tgz) with its outputs marked current in DAG order (the copied tree's sources are newer than the
# tarball's times), check with a dry run that only c3, c2 and what follows remain, then the README's live command
# (device_run.sh). On another GPU: no resume (rows of two GPUs do not mix); the merged tree kernel against main's
# previous kernels (.dev/s33/v/head) on c8 instead. Both: the tree GPU tests and both sanitizers on this tree.
#   TKPREFIX_GIT_COMMIT=<sha> DL=<s> V=.dev/s34x bash data/h200/dev/s34_resume/call.sh
set -u
V0=${V:-.dev/s34x}; V=.dev/s33; HERE=$(dirname "$0")
tar xJf $V0/third_party.txz  # xz, not gzip: the call's 64 MiB carry limit
# the wheels less the notebooks' (the same limit): the notebooks run here at replay, not on the device
mkdir -p .whl && mv .dev/whl34/*.whl .whl/
OMIT="--omit-from paper macros notebook_correctness notebook_performance notebook_peers notebook_e2e notebook_crossgpu"
source $HERE/../s26_call_lib.sh
L=$OUT/call.log; R=/tmp/s34; mkdir -p $R
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader)
tree_checks() {
  timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_tree.py > $R/pytest_tree.log 2>&1
  echo "pytest tree rc=$? at $(el) s: $(tail -1 $R/pytest_tree.log)"
  for t in memcheck racecheck; do
    timeout 90 $CS --tool $t --print-limit 20 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_tree.py \
      -k sanitizer_small > $R/san_tree_$t.log 2>&1
    echo "$t tree rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_tree_$t.log)"
  done
}
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
if [[ $GPU == *H100* ]]; then
  tar xJf $V0/chunk_attn_lib.txz -C third_party/chunk-attention/src/chunk_attn
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PYTHONPATH PATH=/tmp/site/bin:$PATH
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
  tkprefix build --verbose > $R/build.log 2>&1; echo "build rc=$? at $(el) s"
  tree_checks  # on the pipeline's build (build/tk_ext), before the peers' build
  tkprefix build-peers > $R/build_peers.log 2>&1; echo "build-peers rc=$? at $(el) s"; tail -4 $R/build_peers.log
  tar xzf $V0/results.tgz
  for f in provenance.json build.done check.csv build_peers.done bench_c8_trees.csv bench_c7_forest.csv e2e.csv \
      bench_c4_chunk_first.csv bench_c5_two_level_tree.csv bench_c1_system_prompt.csv; do touch results/live/$f; done
  snakemake -n --workflow-profile workflow/profiles/local --config mode=live $OMIT > $R/dry.log 2>&1
  sed -n '/^job /,/^total/p' $R/dry.log
  if grep -qE "output: results/live/(bench_c[1578]|e2e|check|build)" $R/dry.log; then
    echo "dry run plans finished jobs again: not resumed"
  else
    TKPREFIX_GIT_DIRTY=0 TKPREFIX_RUN_DEADLINE_S=$(( DL - $(el) - 25 )) bash scripts/bench/device_run.sh \
      $OMIT > $R/device_run.log 2>&1
    echo "device_run rc=$? at $(el) s"; grep -E "steps .* done|Error in rule" $R/device_run.log | tail -4
  fi
else
  kbuild tree 8 100 head this
  for r in 1 2; do for v in head this; do
    env $(kenv tree $v) timeout 60 python3 -m tkprefix.cli bench --only c8 --impls tk_tree --out $R/c8_${v}_$r \
      > $R/bench_${v}_$r.log 2>&1; echo "bench c8 $v $r rc=$? at $(el) s"
  done
  python3 -m tkprefix.cli compare $R/c8_head_$r $R/c8_this_$r --csv $R/cmp_$r.csv > $R/cmp_$r.log 2>&1; tail -5 $R/cmp_$r.log
  done
  tree_checks
fi
) >> $L 2>&1
echo "done at $(el) s" >> $L
tar czf $OUT/s34.tgz -C /tmp s34 2>> $L
cat $L
