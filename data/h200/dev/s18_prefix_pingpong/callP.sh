#!/usr/bin/env bash
# Session 18, call P: ping-pong (FA3's scheduler barrier) on top of the overlapped prefix loop, against main 15c24dc.
set -uo pipefail
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
export THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in main pp; do mkdir -p /tmp/kv/$v && cp -r kernels/. /tmp/kv/$v/; done
cp .dev/s18/prefix_pp.cu /tmp/kv/pp/hydragen/prefix.cu   # prefix_pp.cu = kernels/hydragen/prefix.cu + pingpong.patch
build() {
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 MAX_JOBS=6 timeout 240 \
    python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > /tmp/build_$1.log 2>&1; echo "build $1 rc=$?"
}
for v in main pp; do build $v & done; wait; echo "builds done at $(el) s"
echo "tag,B,Hq,Hkv,P,cw_arg,cw,splits,median_us,tflops,rel_err,nan" > $OUT/ab.csv
ab() {
  TAG=$1 KV=128 TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 \
    timeout 60 python3 .dev/s18/kv_ab.py >> $OUT/ab.csv 2>>$OUT/ab.err; echo "ab $1 rc=$? at $(el) s"
}
ab pp; ab main; ab pp; ab main
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in racecheck synccheck; do
  [ $(el) -lt 200 ] || break
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/pp TKPREFIX_BUILD_DIR=/tmp/b_pp timeout 60 \
    $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$tool.log)"
done
echo "done at $(el) s"
