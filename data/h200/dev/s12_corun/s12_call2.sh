#!/usr/bin/env bash
# Session 12 (rerun in session 13), GPU call 2: the co-run tree: hydragen GPU tests, sanitizers, auto vs serial.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call2.log; st(){ echo "[s12 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 150 python3 .dev/s12_check.py > $OUT/check_auto.csv 2> $OUT/check.err; st "check rc=$? $(tail -1 $OUT/check.err)"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -5 >> $L
for TOOL in memcheck racecheck; do
  timeout 80 compute-sanitizer --tool $TOOL --error-exitcode 9 python3 .dev/s12_sanitize.py > $OUT/${TOOL}.log 2>&1; st "$TOOL rc=$? $(tail -1 $OUT/${TOOL}.log)"
done
st end
