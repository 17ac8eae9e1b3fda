#!/usr/bin/env bash
# Session 11, GPU call 2: the cost/overlap-threshold change: GPU tests, memcheck, overlap vs serial loop by tiles/item.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call2.log; st(){ echo "[s11 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
git log --oneline -1 >> $L 2>&1; git diff --stat >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 150 python3 .dev/s11_overlap.py > $OUT/overlap.csv 2> $OUT/overlap.err; st "overlap rc=$? $(tail -1 $OUT/overlap.err)"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py tests/gpu/test_contract_gpu.py tests/gpu/test_readme_gpu.py tests/gpu/test_cache_gpu.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -5 >> $L
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 python3 .dev/s11_sanitize.py > $OUT/memcheck.log 2>&1; st "memcheck rc=$? $(tail -1 $OUT/memcheck.log)"
st end
