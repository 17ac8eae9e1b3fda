#!/usr/bin/env bash
# Session 14, GPU call 1: (a) co-run stream order: 7106407's library vs swapped (s13_eager_order), then the swapped
# tree with CORUN_AUTO; (b) the merge kernel with W warps per (row, head): c4/c5/c7/c8 TK rows, chunk+tree tests;
# hydragen GPU tests; sanitizers.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call1.log; st(){ echo "[s14 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
left(){ [ $(( $(date +%s)-T0 )) -lt $1 ]; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
export TKPREFIX_GIT_COMMIT=s14-dev TKPREFIX_GIT_DIRTY=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
cp .dev/tk_hydragen_7106407.py src/tkprefix/tk_hydragen.py
timeout 120 python3 data/h200/dev/s13_eager_order/s13_eager_order.py > $OUT/order.csv 2> $OUT/order.err; st "order rc=$? $(tail -1 $OUT/order.err)"
cp .dev/tk_hydragen_swapped.py src/tkprefix/tk_hydragen.py
timeout 120 python3 -m tkprefix.cli bench --only c4 c5 c7 c8 --impls tk_chunk_attn tk_chunk_first tk_tree tk_hydragen --out $OUT/bench_merge > $OUT/bench.log 2>&1; st "bench rc=$? $(tail -1 $OUT/bench.log)"
left 420 && { timeout 90 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py tests/gpu/test_tk_chunk.py tests/gpu/test_tk_tree.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"; }
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -8 >> $L
left 470 && { timeout 50 compute-sanitizer --tool racecheck --error-exitcode 9 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_chunk.py -k many_partials > $OUT/racecheck_merge.log 2>&1; st "racecheck merge rc=$? $(tail -1 $OUT/racecheck_merge.log)"; }
for TOOL in racecheck memcheck; do
  left 520 && { timeout 60 compute-sanitizer --tool $TOOL --error-exitcode 9 python3 scripts/device/sanitize_small.py > $OUT/${TOOL}.log 2>&1; st "$TOOL rc=$? $(tail -1 $OUT/${TOOL}.log)"; }
done
st end
