#!/usr/bin/env bash
set -u
R=$PWD
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 100 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; echo "build rc=$? $(tail -1 $OUT/build.log)"
nvidia-smi > $OUT/smi.txt 2>&1
timeout 260 python3 .dev/hang.py 200 > $OUT/hang.log 2>&1; echo "hang rc=$?"
grep -c "status\|ok" $OUT/hang.log; tail -4 $OUT/hang.log
