#!/usr/bin/env bash
# Session 17, call 2, the first of the recording's calls. It runs session 16's harness stress on the fixed kernels,
# then the README's live command (scripts/bench/device_run.sh) with the call's remaining time.
# The stress: ../s16_hydragen_hang/hang.py, group "tk" (tk_hydragen + tk_chunk_attn on c7 case 2, 400 eager + 400
# graph calls a run). At 55c774e that hung within ~10 s (runs 9 and 1).
# Carried: .whl, third_party (without chunk-attention/deps). Env: TKPREFIX_GIT_COMMIT, TKPREFIX_GIT_DIRTY.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
timeout 200 python3 -m tkprefix.cli build > $OUT/stress.log 2>&1; echo "build rc=$? at $(el) s"
k=0
while [ $(el) -lt 150 ]; do
  timeout 100 python3 data/h200/dev/s16_hydragen_hang/hang.py $(( 160 - $(el) )) tk > /tmp/stress_$k.log 2>&1; rc=$?
  echo "[$(el) s] stress process $k rc=$rc: $(grep -c 'tk_hydragen g1 ok' /tmp/stress_$k.log) runs done," \
       "$(grep -c Timeout /tmp/stress_$k.log) hang"
  cat /tmp/stress_$k.log >> $OUT/stress.log
  k=$((k+1))
done
)
TKPREFIX_RUN_DEADLINE_S=$(( 555 - $(el) )) bash scripts/bench/device_run.sh --omit-from paper > $OUT/run1.log 2>&1
echo "device_run rc=$? at $(el) s"
