#!/usr/bin/env bash
# Session 7, GPU call 5: the prefix-kernel memcheck report of call 4 (test_prefix_attention, B256 H32/8 P1500 D128 bf16).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/c5.log; st(){ echo "[c5 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 60 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$?"
timeout 50 compute-sanitizer --tool memcheck --print-limit 12 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py -k "B256_Bp1_N1_H32-8_P1500 and 128-bf16 and cw_auto" > $OUT/memcheck_prefix.log 2>&1; st "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck_prefix.log | tail -1) $(tail -1 $OUT/memcheck_prefix.log)"
