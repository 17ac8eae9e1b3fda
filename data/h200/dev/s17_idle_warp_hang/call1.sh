#!/usr/bin/env bash
# Session 17, call 1: does the idle-warp lag hang the old prefix kernel, and does the sync fix it?
# Carried: third_party/ThunderKittens, .dev (prefix_55c774e.cu, variants.py). Everything to $OUT.
set -uo pipefail
T0=$(date +%s); left() { echo $(( 570 - ($(date +%s) - T0) )); }
export THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv > $OUT/gpu.txt; python3 -c "import torch;print(torch.__version__)" >> $OUT/gpu.txt
# .dev/s17/prefix_55c774e.cu = `git show 55c774e:kernels/hydragen/prefix.cu`; variants.py is this folder's
python3 .dev/s17/variants.py .dev/s17/prefix_55c774e.cu /tmp/kv
build() {  # variant
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 MAX_JOBS=3 timeout 240 \
    python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > $OUT/build_$1.log 2>&1; echo "build $1 rc=$?"
}
for v in old old_stall new new_stall new_fence; do build $v & done
MAX_JOBS=6 timeout 300 python3 -c "import tkprefix.build as b; b.load_extension()" > $OUT/build_all.log 2>&1 && echo "build all ok" &
wait; echo "builds done at $(( $(date +%s) - T0 )) s"
hang() {  # variant seconds variants shapes
  echo "== $1 $3 $4 ${2}s (left $(left))"
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/kv/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1 \
    python3 scripts/device/hydragen_hang.py --seconds $2 --hang-s 10 --variants $3 --shapes $4 2>>$OUT/hang_stderr.log \
    | sed "s/^/$1,/" | tee -a $OUT/hang.csv
}
echo "build,shape,variant,calls,seconds,result" > $OUT/hang.csv
hang old_stall 8 prefix c7
hang new_stall 8 prefix c7
hang old 30 hydragen,prefix c7
hang new 60 hydragen,prefix c7
grep -q "^new,.*hang" $OUT/hang.csv && hang new_fence 40 hydragen c7
echo "== tests (left $(left))"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py tests/gpu/test_tk_chunk.py \
  > $OUT/pytest.log 2>&1; echo "pytest rc=$?"; tail -3 $OUT/pytest.log
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in racecheck synccheck memcheck; do
  [ $(left) -gt 60 ] || break
  timeout 60 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > $OUT/san_hyd_$tool.log 2>&1
  echo "hydragen $tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_hyd_$tool.log)"
  timeout 60 $CS --tool $tool --print-limit 20 python3 scripts/chunk/sanitize_case.py > $OUT/san_chunk_$tool.log 2>&1
  echo "chunk $tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_chunk_$tool.log)"
done
[ $(left) -gt 60 ] && hang old 15 prefix_grid,decode_fused c7
[ $(left) -gt 40 ] && hang new 12 prefix,hydragen rows256
echo "done at $(( $(date +%s) - T0 )) s"
