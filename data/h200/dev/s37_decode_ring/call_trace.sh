#!/usr/bin/env bash
# Session 37, second call: fused_trace.py under rec (main's decode warpgroup) and this (the ring), both with the
# decode's trace stamps (prefix.cu, diagnostic). From the repository root, third_party/ThunderKittens and .dev/s37 carried:
#   DL=<s> V=.dev/s37 bash data/h200/dev/s37_decode_ring/call_trace.sh
set -u
HERE=$(dirname "$0")
source $HERE/../s26_call_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild hydragen 8 200 rec this
for v in rec this rec this; do
  env $(kenv hydragen $v) timeout 60 python3 $HERE/fused_trace.py $v 2>&1 | tee -a $OUT/trace.csv
done
