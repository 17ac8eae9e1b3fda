#!/usr/bin/env bash
# Session 20, call 1: third_party unpacked; builds (the tree, plus hydragen-only builds of the tree and of main
# 24367a3's kernels for the A/B); GPU tests; sanitizers; the A/B (one process per build, alternated).
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s20/third_party.tgz
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
variant() {  # name kernels_dir
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$2 TKPREFIX_BUILD_DIR=/tmp/b_$1 MAX_JOBS=3 timeout 300 \
    python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > /tmp/build_$1.log 2>&1
  echo "build $1 rc=$? at $(el) s"
}
variant base $PWD/.dev/s20/kernels_base & variant new $PWD/kernels &
MAX_JOBS=10 timeout 300 python3 -m tkprefix.cli build > /tmp/build.log 2>&1; echo "build rc=$? at $(el) s"
wait; tail -3 /tmp/build.log
timeout 120 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > /tmp/pytest.log 2>&1
echo "pytest rc=$? at $(el) s: $(tail -1 /tmp/pytest.log)"
echo "tag,kind,B,Hq,Hkv,P,S,median_us,rel_err,nan" > $OUT/ab.csv
ab() {
  TAG=$1 TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$2 TKPREFIX_BUILD_DIR=/tmp/b_$1 timeout 100 \
    python3 data/h200/dev/s20_rescale_prefetch/ab.py >> $OUT/ab.csv 2>>/tmp/ab.err; echo "ab $1 rc=$? at $(el) s"
}
for i in 1 2; do ab base $PWD/.dev/s20/kernels_base; ab new $PWD/kernels; done
tail -5 /tmp/ab.err
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in memcheck racecheck; do
  timeout 150 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$tool.log)"
done
tail -30 /tmp/pytest.log > $OUT/pytest_tail.log
) >> $L 2>&1
echo "done at $(el) s" >> $L
