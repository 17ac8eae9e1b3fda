#!/usr/bin/env bash
# Session 7, GPU call 4 at 7886188 (kernels of the recorded ad9ab83): every GPU test, then compute-sanitizer on the three
# families (hydragen: scripts/device/sanitize_small.py; chunk: scripts/chunk/sanitize_case.py; tree: the pytest cases).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/c4.log; st(){ echo "[c4 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 120 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log | cut -c1-80)"
timeout 130 python3 -m pytest -q -p no:cacheprovider -rs tests/gpu > $OUT/gpu_tests.log 2>&1; st "gpu tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -8 >> $L
san(){ tool=$1; shift; timeout 35 compute-sanitizer --tool $tool --print-limit 20 "$@" > /tmp/s.log 2>&1; st "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/s.log | tail -1) $(grep -E 'passed|failed' /tmp/s.log | tail -1) :: $*" ; }
for tool in memcheck racecheck; do
  san $tool python3 scripts/device/sanitize_small.py
  san $tool python3 scripts/chunk/sanitize_case.py
  san $tool python3 -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k "sanitizer or merge_of"
  san $tool python3 -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py -k "auto and bf16"
done
st end
