#!/usr/bin/env bash
# Session 14, GPU call 3 (main at dda7c7d: merge reverted, co-run automatic): the c3 sweep's TK rows and one torch peer
# through the harness; chunk + hydragen GPU tests.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call3.log; st(){ echo "[s14c3 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
export TKPREFIX_GIT_COMMIT=$1 TKPREFIX_GIT_DIRTY=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 150 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 200 python3 -m tkprefix.cli bench --only c3 --impls tk_hydragen tk_auto sdpa_hydragen --out c3run > $OUT/bench_c3.log 2>&1; st "bench rc=$? $(tail -1 $OUT/bench_c3.log)"
tar czf $OUT/c3run.tgz c3run
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py tests/gpu/test_tk_chunk.py > $OUT/gpu_tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/gpu_tests.log)"
grep -E "^FAILED|^ERROR" $OUT/gpu_tests.log | head -8 >> $L
st end
