#!/usr/bin/env bash
# Session 10, GPU call 2: per-item timestamps of the prefix kernel; ncu of base and both.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call2.log; st(){ echo "[s10 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src:$R/.dev
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 60 python3 .dev/s10_trace.py > $OUT/trace.csv 2> $OUT/trace.err; st "trace rc=$? $(tail -1 $OUT/trace.err)"
timeout 150 ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
  --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis --csv --page details \
  -k regex:prefix_kernel python3 .dev/s10_ncu.py > $OUT/ncu.csv 2> $OUT/ncu.err; st "ncu rc=$? $(tail -1 $OUT/ncu.err)"
st end
