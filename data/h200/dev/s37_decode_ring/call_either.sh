#!/usr/bin/env bash
# Session 37: one call for whichever GPU comes (the pool refused most starts). On an H200 it records data/h200 at
# main (data/h200/dev/s36_record/call.sh, TKPREFIX_GIT_COMMIT set by the caller). On an H100 (data/h100 is recorded
# at 444c4fd, whose kernels differ from main's only in bd9e14c's code layout) it runs the diagnostic instead:
# fused_trace.py under rec (main's decode warpgroup) and ring (decode_ring.patch), both with the decode's trace stamps,
# and main's prefix_decode GPU tests. From the repository root, .whl, .dev/s36 and .dev/s37 carried:
#   TKPREFIX_GIT_COMMIT=<sha> bash data/h200/dev/s37_decode_ring/call_either.sh   (RECORD=0: the diagnostic on any GPU)
set -u
HERE=$(dirname "$0")
[ -f third_party/chunk-attention/CMakeLists.txt ] || tar xJf .dev/s36/third_party.txz
if [ "${RECORD:-1}" = 1 ] && nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  DL=${DL:-525} bash $HERE/../s36_record/call.sh
  exit
fi
V=.dev/s37; DL=${DL:-200}
source $HERE/../s26_call_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild hydragen 8 200 rec ring this
env $(kenv hydragen this) timeout 100 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py \
  -k prefix_decode > $OUT/pytest_pd_main.log 2>&1
echo "pytest prefix_decode (main's kernels) rc=$? at $(el) s: $(tail -1 $OUT/pytest_pd_main.log)"
for v in rec ring rec ring; do
  [ $(left) -gt 30 ] || break
  env $(kenv hydragen $v) timeout 60 python3 $HERE/fused_trace.py $v 2>&1 | tee -a $OUT/trace.csv
done
