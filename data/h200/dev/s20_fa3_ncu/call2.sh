#!/usr/bin/env bash
# Session 20, call 2: tk_hydragen's prefix kernel against FlashInfer's FA3 prefill template (the flashinfer_cascade
# peer) on c3's suffix-0 shapes: harness-style timing with the SM clock sampled beside it, ncu --set full of one
# call each, and the SASS of both kernels.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s20/third_party.tgz
D=data/h200/dev/s20_fa3_ncu
(
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl; echo "wheels rc=$? at $(el) s"
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
export THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv
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
  --format=csv -lms 50 > $OUT/smi.csv &
SMI=$!
timeout 200 python3 $D/measure.py time > $OUT/times.csv 2>/tmp/time.err; echo "time rc=$? at $(el) s"; tail -5 /tmp/time.err
kill $SMI
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
for impl in tk_hydragen flashinfer_cascade; do
  for shape in "1024 32 8 2048" "2048 8 1 4096"; do
    tag=${impl}_$(echo $shape | tr ' ' _)
    timeout 150 $NCU --profile-from-start off --set full -f -o /tmp/ncu_$tag python3 $D/measure.py ncu $impl $shape \
      > /tmp/ncu_$tag.log 2>&1; echo "ncu $tag rc=$? at $(el) s"; tail -2 /tmp/ncu_$tag.log
    $NCU --import /tmp/ncu_$tag.ncu-rep --page details --csv > /tmp/ncu_details_$tag.csv 2>&1
  done
done
cat /tmp/ncu_details_tk_hydragen_*.csv > $OUT/ncu_details_tk.csv
cat /tmp/ncu_details_flashinfer_cascade_*.csv > $OUT/ncu_details_fi.csv
tar czf $OUT/ncu_reps.tgz -C /tmp $(cd /tmp && ls ncu_*.ncu-rep)
CUOBJ=$(command -v cuobjdump || ls /usr/local/cuda*/bin/cuobjdump | head -1)
mkdir -p /tmp/sass
find / -name "*.so" -path "*flashinfer*" 2>/dev/null | grep -v /tmp/site | head -50
for so in $(find / -name "*.so" -path "*flashinfer*" 2>/dev/null | grep -v /tmp/site | grep -i prefill); do
  $CUOBJ -sass "$so" > /tmp/sass/fi_$(basename $so).sass 2>/dev/null
done
TK=$(find build -name "tkprefix_ext*.so" | head -1)
$CUOBJ -sass -fun '_ZN3tkp6prefix13prefix_kernelI13__nv_bfloat16Li128ELi2ELb1ELi128EEEvNS0_7globalsE' $TK \
  > /tmp/sass/tk_prefix_overlap_bf16_d128.sass 2>&1
ls -la /tmp/sass
tar czf $OUT/sass.tgz -C /tmp sass
) >> $L 2>&1
echo "done at $(el) s" >> $L
