#!/usr/bin/env bash
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call6.log; st(){ echo "[s10 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader >> $L
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 60 python3 .dev/s10_mainlike.py > $OUT/mainlike.csv 2> $OUT/mainlike.err; st "mainlike rc=$? $(tail -1 $OUT/mainlike.err)"
st end
