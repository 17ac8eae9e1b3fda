#!/usr/bin/env bash
# Session 18, call A: GPU tests + sanitizers of main c0deb3b, the 2-stage A/B (main 3a47f0c's prefix.cu vs c0deb3b's),
# then the README's live command (scripts/bench/device_run.sh) with the call's remaining time.
# Carried: .whl, third_party (without chunk-attention/deps), .dev. Env: TKPREFIX_GIT_COMMIT, TKPREFIX_GIT_DIRTY.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in main new; do mkdir -p /tmp/kv/$v && cp -r kernels/. /tmp/kv/$v/; done
cp .dev/s18/prefix_main.cu /tmp/kv/main/hydragen/prefix.cu
build() {
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 MAX_JOBS=3 timeout 240 \
    python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > /tmp/build_$1.log 2>&1; echo "build $1 rc=$?"
}
for v in main new; do build $v & done
MAX_JOBS=8 timeout 300 python3 -m tkprefix.cli build > /tmp/build_all.log 2>&1; echo "build all rc=$? $(tail -1 /tmp/build_all.log)"
wait; echo "builds done at $(el) s"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py > $OUT/pytest.log 2>&1
echo "pytest rc=$? at $(el) s: $(tail -1 $OUT/pytest.log)"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in racecheck memcheck; do
  timeout 90 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$tool.log)"
done
echo "tag,B,Hq,Hkv,P,cw_arg,cw,splits,median_us,tflops,rel_err,nan" > $OUT/ab.csv
ab() {
  TAG=$1 KV=128 TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 \
    timeout 60 python3 .dev/s18/kv_ab.py >> $OUT/ab.csv 2>>/tmp/ab.err; echo "ab $1 rc=$? at $(el) s"
}
ab main; ab new
) >> $L 2>&1
TKPREFIX_RUN_DEADLINE_S=$(( 565 - $(el) )) bash scripts/bench/device_run.sh --omit-from paper > $OUT/run1.log 2>&1
echo "device_run rc=$? at $(el) s" >> $L
