#!/usr/bin/env bash
# Session 11, GPU call 1: build at main, GPU tests at the landed defaults, sanitizers, schedule A/B, every prefix plan.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call1.log; st(){ echo "[s11 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L; git log --oneline -1 >> $L 2>&1
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 150 python3 .dev/s11_plans.py > $OUT/plans.csv 2> $OUT/plans.err; st "plans rc=$? $(tail -1 $OUT/plans.err)"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py tests/gpu/test_contract_gpu.py tests/gpu/test_readme_gpu.py tests/gpu/test_cache_gpu.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -5 >> $L
timeout 60 python3 .dev/s10_final2.py > $OUT/ab.csv 2> $OUT/ab.err; st "ab rc=$? $(tail -1 $OUT/ab.err)"
for TOOL in memcheck racecheck; do
  timeout 60 compute-sanitizer --tool $TOOL --error-exitcode 9 python3 .dev/s10_sanitize_final2.py > $OUT/${TOOL}.log 2>&1; st "$TOOL rc=$? $(tail -1 $OUT/${TOOL}.log)"
done
st end
