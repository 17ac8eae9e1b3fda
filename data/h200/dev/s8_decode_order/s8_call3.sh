#!/usr/bin/env bash
# Session 8, GPU call 3 (from the repository root with decode_order_hint.patch applied to main 9824e97):
# decode block order / L2 hint A/B (dev env switches), quick decode tests.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/s8c3.log; st(){ echo "[c3 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 120 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$?"
TKP_DECODE_ORDER=1 timeout 60 python3 -m pytest -q -x -p no:cacheprovider tests/gpu/test_tk_hydragen.py -k "decode or nopad" > $OUT/tests_o1.log 2>&1; st "tests order1 rc=$? $(tail -1 $OUT/tests_o1.log)"
timeout 150 python3 data/h200/dev/s8_decode_order/ab_order_hint.py > $OUT/ab2.csv 2> $OUT/ab2.err; st "ab2 rc=$?"
st done
