#!/usr/bin/env bash
# Session 10, GPU call 1: build the persistent / overlapped prefix kernel; Hydragen GPU tests under base and both;
# the A/B (correctness + timing); sanitizers under both and persist-only (3 looping blocks).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call1.log; st(){ echo "[s10 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src:$R/.dev
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L; git log --oneline -1 >> $L 2>&1
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
for V in 0,0 1,132; do
  S10_VARIANT=$V timeout 100 python3 -m pytest -q -x -p no:cacheprovider -p s10_plugin tests/gpu/test_tk_hydragen.py tests/gpu/test_contract_gpu.py > $OUT/gpu_tests_$V.log 2>&1; st "tests $V rc=$? $(tail -1 $OUT/gpu_tests_$V.log)"
  grep -E "^FAILED|^ERROR|Error" $OUT/gpu_tests_$V.log | head -5 >> $L
done
timeout 150 python3 .dev/s10_prefix_ab.py > $OUT/ab.csv 2> $OUT/ab.err; st "ab rc=$? $(grep -c FAIL $OUT/ab.csv) FAIL; $(tail -1 $OUT/ab.err)"
for V in 1,3 0,3; do
  for TOOL in memcheck racecheck; do
    S10_VARIANT=$V timeout 60 compute-sanitizer --tool $TOOL --error-exitcode 9 python3 .dev/s10_sanitize.py > $OUT/${TOOL}_$V.log 2>&1; st "$TOOL $V rc=$? $(tail -1 $OUT/${TOOL}_$V.log)"
  done
done
st end
