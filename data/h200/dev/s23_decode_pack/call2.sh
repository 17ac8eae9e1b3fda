#!/usr/bin/env bash
# Session 23, call 2: ncu of the decode kernel at S 64 (head, and the packed build at 8 tiles a block) and at S 512
# (head), c3 32/8 B2048 and c1 32/32 B128: where the short items' time goes. The builds of call 1 if the machine is
# still warm, else rebuilt.
set -u
HERE=$(dirname "$0")
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s23/third_party.tgz
venv() {
  if [ "$1" = head ]; then R=$PWD/.dev/s23/head; else R=$PWD; fi
  echo "PYTHONPATH=$R/src TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$R/kernels TKPREFIX_BUILD_DIR=/tmp/b_$1"
}
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
for v in head new; do
  ( env $(venv $v) MAX_JOBS=8 timeout 200 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s" ) &
done
wait
SEC="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis"
run() {  # tag build shape [pack]
  env $(venv $2) SHAPE=$3 ${4:+PACK=$4} timeout 120 ncu -k regex:decode_kernel -s 1 -c 1 --clock-control none $SEC \
    python3 $HERE/ncu_decode.py > $OUT/ncu_$1.log 2>&1
  echo "ncu $1 rc=$? at $(el) s"
}
run head_s64_32x8 head 2048,32,8,64
run new8_s64_32x8 new 2048,32,8,64 8
run head_s512_32x8 head 256,32,8,512
run head_s64_32x32 head 128,32,32,64
run new8_s64_32x32 new 128,32,32,64 8
) >> $L 2>&1
echo "done at $(el) s" >> $L
