#!/usr/bin/env bash
set -u
R=$PWD; T0=$(date +%s)
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 100 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; echo "build rc=$? $(tail -1 $OUT/build.log)"
k=0
while [ $(( $(date +%s) - T0 )) -lt 240 ]; do
  for g in tk torch tkh tkc; do
    timeout 70 python3 .dev/hang.py 40 $g > $OUT/h_${g}_$k.log 2>&1; rc=$?
    echo "[$(( $(date +%s) - T0 ))s] group $g run $k rc=$rc its=$(grep -c ' g1 ok' $OUT/h_${g}_$k.log) $(grep -m1 Timeout $OUT/h_${g}_$k.log)"
  done
  k=$((k+1))
done
