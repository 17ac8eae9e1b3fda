#!/usr/bin/env bash
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call4.log; st(){ echo "[s14c4 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 100 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 80 python3 data/h200/dev/s14_c4gap/s14_c4gap.py > $OUT/c4gap.csv 2> $OUT/c4gap.err; st "gap rc=$? $(tail -2 $OUT/c4gap.err)"
