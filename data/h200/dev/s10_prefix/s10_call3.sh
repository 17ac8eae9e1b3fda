#!/usr/bin/env bash
# Session 10, GPU call 3: cp.async Q loads (next item's during the last tile); GPU tests under base and both; trace;
# the A/B (correctness + timing); sanitizers with 3 looping blocks.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call3.log; st(){ echo "[s10 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src:$R/.dev
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
for V in 0,0 1,132; do
  S10_VARIANT=$V timeout 100 python3 -m pytest -q -x -p no:cacheprovider -p s10_plugin tests/gpu/test_tk_hydragen.py tests/gpu/test_contract_gpu.py > $OUT/gpu_tests_${V/,/_}.log 2>&1; st "tests $V rc=$? $(tail -1 $OUT/gpu_tests_${V/,/_}.log)"
  grep -E "^FAILED|^ERROR|Error" $OUT/gpu_tests_${V/,/_}.log | head -5 >> $L
done
timeout 60 python3 .dev/s10_trace.py > $OUT/trace.csv 2> $OUT/trace.err; st "trace rc=$? $(tail -1 $OUT/trace.err)"
timeout 100 python3 .dev/s10_prefix_ab.py > $OUT/ab.csv 2> $OUT/ab.err; st "ab rc=$? $(grep -c FAIL $OUT/ab.csv) FAIL; $(tail -1 $OUT/ab.err)"
for TOOL in memcheck racecheck; do
  S10_VARIANT=1,3 timeout 60 compute-sanitizer --tool $TOOL --error-exitcode 9 python3 .dev/s10_sanitize.py > $OUT/${TOOL}.log 2>&1; st "$TOOL rc=$? $(tail -1 $OUT/${TOOL}.log)"
done
st end
