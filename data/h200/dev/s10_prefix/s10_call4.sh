#!/usr/bin/env bash
# Session 10, GPU call 4: the landed prefix kernel: every Hydragen GPU test, the README/contract tests, correctness +
# timing, sanitizers, and the harness on c3 (ours and the PyTorch peers; FlashInfer is not on this machine).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call4.log; st(){ echo "[s10 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py tests/gpu/test_contract_gpu.py tests/gpu/test_readme_gpu.py tests/gpu/test_prebuilt.py tests/gpu/test_cache_gpu.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -5 >> $L
timeout 100 python3 .dev/s10_final.py > $OUT/final.csv 2> $OUT/final.err; st "final rc=$? $(grep -c FAIL $OUT/final.csv) FAIL; $(tail -1 $OUT/final.err)"
for TOOL in memcheck racecheck; do
  timeout 70 compute-sanitizer --tool $TOOL --error-exitcode 9 python3 .dev/s10_sanitize_final.py > $OUT/${TOOL}.log 2>&1; st "$TOOL rc=$? $(tail -1 $OUT/${TOOL}.log)"
done
timeout 150 python3 -m tkprefix.cli bench --only c3 --impls tk_hydragen sdpa_hydragen cudnn_hydragen --deadline-s 140 --out $OUT/bench > $OUT/bench.log 2>&1; st "bench rc=$? $(tail -1 $OUT/bench.log)"; tar czf $OUT/bench.tgz -C $OUT bench && rm -rf $OUT/bench
st end
