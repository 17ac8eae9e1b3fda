#!/usr/bin/env bash
# Session 20, call 5: measure.py's plain timing, then the same with a 1 GiB copy and an 8192^3 GEMM among the runners
# (the load the other peers put on a recorded case), the SM clock sampled beside both.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s20/third_party.tgz
D=data/h200/dev/s20_fa3_ncu
(
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl; echo "wheels rc=$? at $(el) s"
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
export THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
( timeout 300 python3 -c "
from tkprefix.bench.cases import Case
from tkprefix.bench.inputs import make_inputs
from tkprefix.bench.peers import get_impl
for hq, hkv in ((32, 8), (8, 1)):
    c = Case('c3_gqa_large_batch', 64, hq, hkv, 128, ((1, 256),), 0)
    get_impl('flashinfer_cascade').prepare(c, make_inputs(c)).run()
print('flashinfer jit ok')" > /tmp/fi_jit.log 2>&1; echo "fi jit rc=$? at $(el) s: $(tail -1 /tmp/fi_jit.log)" ) &
MAX_JOBS=10 timeout 300 python3 -m tkprefix.cli build > /tmp/build.log 2>&1; echo "build rc=$? at $(el) s"
wait
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active \
  --format=csv -lms 50 > $OUT/smi5.csv &
SMI=$!
for mode in time loaded; do
  echo "mode $mode starts $(date +%H:%M:%S.%N)"
  timeout 200 python3 $D/measure.py $mode > $OUT/$mode.csv 2>/tmp/$mode.err; echo "$mode rc=$? at $(el) s"
  tail -3 /tmp/$mode.err
done
kill $SMI
) >> $L 2>&1
echo "done at $(el) s" >> $L
