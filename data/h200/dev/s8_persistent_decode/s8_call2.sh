#!/usr/bin/env bash
# Session 8, GPU call 2 (run from the repository root with decode_persistent.patch applied to main 9824e97): the
# persistent decode kernel: build, GPU tests, sanitizers, the A/B of ab_waves.py.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/s8c2.log; st(){ echo "[c2 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 120 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$?"
timeout 125 python3 -m pytest -q -x -p no:cacheprovider tests/gpu/test_tk_hydragen.py -k "decode or nopad or graph or auto_without or bad_inputs" > $OUT/tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/tests.log)"
for tool in memcheck racecheck; do
  timeout 60 compute-sanitizer --tool $tool python3 scripts/device/sanitize_small.py > $OUT/san_$tool.log 2>&1; st "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$tool.log | tail -1)"
done
timeout 110 python3 data/h200/dev/s8_persistent_decode/ab_waves.py > $OUT/cross.csv 2> $OUT/cross.err; st "cross rc=$?"
st done
