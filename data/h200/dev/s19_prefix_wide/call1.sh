#!/usr/bin/env bash
# Session 19, call 1: third_party unpacked; build; GPU tests; sanitizers; the 176-key A/B; then the README's live
# command (scripts/bench/device_run.sh) with the call's remaining time. Env: TKPREFIX_GIT_COMMIT, TKPREFIX_GIT_DIRTY.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s19/third_party.tgz
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
MAX_JOBS=12 timeout 300 python3 -m tkprefix.cli build > /tmp/build.log 2>&1; echo "build rc=$? at $(el) s"; tail -5 /tmp/build.log
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py > $OUT/pytest.log 2>&1
echo "pytest rc=$? at $(el) s: $(tail -1 $OUT/pytest.log)"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in racecheck memcheck; do
  timeout 100 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$tool.log)"
done
timeout 120 python3 data/h200/dev/s19_prefix_wide/wide_ab.py > $OUT/ab.csv 2>/tmp/ab.err; echo "ab rc=$? at $(el) s"; tail -20 /tmp/ab.err
) >> $L 2>&1
TKPREFIX_RUN_DEADLINE_S=$(( 565 - $(el) )) bash scripts/bench/device_run.sh --omit-from paper > $OUT/run1.log 2>&1
echo "device_run rc=$? at $(el) s" >> $L
