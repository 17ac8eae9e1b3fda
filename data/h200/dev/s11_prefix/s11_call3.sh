#!/usr/bin/env bash
# Session 11, GPU call 3 (landed 6d897cd + data): GPU tests of both families at the landed defaults, sanitizers.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call3.log; st(){ echo "[s11 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
git diff --stat 6d897cd -- src kernels >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py tests/gpu/test_contract_gpu.py tests/gpu/test_readme_gpu.py tests/gpu/test_cache_gpu.py tests/gpu/test_tk_chunk.py tests/gpu/test_tk_tree.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -5 >> $L
for TOOL in memcheck racecheck; do
  timeout 70 compute-sanitizer --tool $TOOL --error-exitcode 9 python3 .dev/s11_sanitize.py > $OUT/${TOOL}.log 2>&1; st "$TOOL rc=$? $(tail -1 $OUT/${TOOL}.log)"
  tail -4 $OUT/${TOOL}.log > $OUT/${TOOL}_tail.txt
done
st end
