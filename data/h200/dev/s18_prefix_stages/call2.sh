#!/usr/bin/env bash
# Session 18, call 2: the prefix kernel's key tile (128 / 160 / 176 / 192 keys) on c3's suffix-0 shapes.
set -uo pipefail
T0=$(date +%s)
export THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
python3 .dev/s18/kv_variants.py /tmp/kv
mkdir -p /tmp/kv/main && cp -r kernels/. /tmp/kv/main/
build() {
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 MAX_JOBS=3 timeout 240 \
    python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > $OUT/build_$1.log 2>&1; echo "build $1 rc=$?"
}
for v in main kv176s2 kv160s2 kv192s2 kv128s2; do build $v & done
wait; echo "builds done at $(( $(date +%s) - T0 )) s"
echo "tag,B,Hq,Hkv,P,cw_arg,cw,splits,median_us,tflops,rel_err,nan" > $OUT/kv_ab.csv
ab() {  # variant kv
  TAG=$1 KV=$2 TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 \
    timeout 90 python3 .dev/s18/kv_ab.py >> $OUT/kv_ab.csv 2>>$OUT/kv_ab.err; echo "ab $1 rc=$? at $(( $(date +%s) - T0 )) s"
}
ab main 128; ab kv176s2 176; ab kv160s2 160; ab kv192s2 192; ab kv128s2 128; ab main 128; ab kv176s2 176; ab kv160s2 160
echo "done at $(( $(date +%s) - T0 )) s"
