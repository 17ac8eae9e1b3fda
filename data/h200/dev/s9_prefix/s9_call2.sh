#!/usr/bin/env bash
# Session 9, GPU call 2: build the key-interleaved prefix schedule; every Hydragen GPU test; the A/B; sanitizers.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call2.log; st(){ echo "[s9 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 120 python3 -m pytest -q -x -p no:cacheprovider tests/gpu/test_tk_hydragen.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR|Error" $OUT/gpu_tests.log | head -8 >> $L
timeout 110 python3 .dev/s9_ab.py $OUT > $OUT/ab.log 2>&1; st "ab rc=$? $(tail -1 $OUT/ab.log)"
timeout 50 compute-sanitizer --tool memcheck --error-exitcode 9 python3 scripts/device/sanitize_small.py > $OUT/memcheck.log 2>&1; st "memcheck rc=$? $(tail -1 $OUT/memcheck.log)"
timeout 50 compute-sanitizer --tool racecheck --error-exitcode 9 python3 scripts/device/sanitize_small.py > $OUT/racecheck.log 2>&1; st "racecheck rc=$? $(tail -1 $OUT/racecheck.log)"
st end
