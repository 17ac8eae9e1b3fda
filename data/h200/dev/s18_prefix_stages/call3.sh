#!/usr/bin/env bash
# Session 18, call 3: the overlapped prefix loop with 2 K/V stages (working tree) against 3 (main 3a47f0c), then the
# GPU tests and sanitizers of the working tree.
set -uo pipefail
T0=$(date +%s); left() { echo $(( 560 - ($(date +%s) - T0) )); }
export THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
for v in main new; do mkdir -p /tmp/kv/$v && cp -r kernels/. /tmp/kv/$v/; done
cp .dev/s18/prefix_main.cu /tmp/kv/main/hydragen/prefix.cu
build() {
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 MAX_JOBS=3 timeout 240 \
    python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > $OUT/build_$1.log 2>&1; echo "build $1 rc=$?"
}
for v in main new; do build $v & done
MAX_JOBS=8 timeout 300 python3 -m tkprefix.cli build > $OUT/build_all.log 2>&1 && echo "build all ok" &
wait; echo "builds done at $(( $(date +%s) - T0 )) s"
echo "tag,B,Hq,Hkv,P,cw_arg,cw,splits,median_us,tflops,rel_err,nan" > $OUT/ab.csv
ab() {
  TAG=$1 KV=128 TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 \
    timeout 90 python3 .dev/s18/kv_ab.py >> $OUT/ab.csv 2>>$OUT/ab.err; echo "ab $1 rc=$? at $(( $(date +%s) - T0 )) s"
}
for r in 1 2 3; do ab main; ab new; done
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py > $OUT/pytest.log 2>&1
echo "pytest rc=$? at $(( $(date +%s) - T0 )) s: $(tail -1 $OUT/pytest.log)"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in racecheck memcheck; do
  [ $(left) -gt 50 ] || break
  timeout 60 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$tool.log)"
done
echo "done at $(( $(date +%s) - T0 )) s"
