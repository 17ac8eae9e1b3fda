#!/usr/bin/env bash
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call.log; st(){ echo "[c1 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
timeout 150 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 200 python3 scripts/device/flush_tax.py --reps 40 > $OUT/flush_tax.csv 2> $OUT/flush_tax.err; st "flush_tax rc=$? $(tail -2 $OUT/flush_tax.err)"
