#!/usr/bin/env bash
# Session 12, GPU call 1: build at main, co-run sweep (compute-bound prefix beside the suffix decode).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call1.log; st(){ echo "[s12 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 300 python3 .dev/s12_corun.py > $OUT/corun.csv 2> $OUT/corun.err; st "corun rc=$? $(tail -1 $OUT/corun.err)"
st end
