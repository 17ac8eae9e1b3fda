#!/usr/bin/env bash
# Session 9, GPU call 1: build main; prefix on the decode kernel (s9_prefix_on_decode.py); the plain-decode crossover
# at the new split rule; ncu of the decode kernel against SDPA.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call1.log; st(){ echo "[s9 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L; git log --oneline -1 >> $L 2>&1
timeout 200 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 150 python3 .dev/s9_prefix_on_decode.py > $OUT/prefix_on_decode.csv 2> $OUT/prefix_on_decode.err; st "pod rc=$? $(tail -2 $OUT/prefix_on_decode.err)"
timeout 150 python3 data/h200/dev/auto_p0_s7/crossover.py > $OUT/crossover.csv 2> $OUT/crossover.err; st "crossover rc=$? $(tail -2 $OUT/crossover.err)"
timeout 130 ncu --clock-control none --profile-from-start off --section SpeedOfLight --section MemoryWorkloadAnalysis \
  --section MemoryWorkloadAnalysis_Tables --section Occupancy --section LaunchStats --section WarpStateStats \
  --section SchedulerStats --csv --page details python3 .dev/s9_ncu.py > $OUT/ncu.csv 2> $OUT/ncu.err; st "ncu rc=$? $(tail -2 $OUT/ncu.err)"
st end
