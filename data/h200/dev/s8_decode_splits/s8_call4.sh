#!/usr/bin/env bash
# Session 8, GPU call 4 (main 9824e97 plus the test edits; from the repository root): decode time against the
# key-split count (sets decode_splits rule).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/s8c4.log; st(){ echo "[c4 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 120 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$?"
timeout 100 python3 data/h200/dev/s8_decode_splits/s8_splits.py > $OUT/splits.csv 2> $OUT/splits.err; st "splits rc=$?"
st done
