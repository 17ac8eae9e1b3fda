#!/usr/bin/env bash
# Session 26 (prepared on a CPU-only session, to run in the next one with a GPU; see README.md): A/B of the tree's
# block-per-unit decode kernel (tt: this tree's kernels/, branch s26-tree-tile) against main's warp-per-unit one
# (head: v/head), through the harness on c8 (tk_tree only, alternated twice), then the GPU tests of the tree family on
# tt and compute-sanitizer racecheck + memcheck on its small cases. Stops itself at $DL s. Run from the repository
# root of the branch's checkout:   DL=560 bash data/h200/dev/s26_tree_tile/call_ab.sh   (V: the folder holding v/head)
set -u
HERE=$(dirname "$0"); V=${V:-.dev/s27}; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DL - $(el) )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf $V/third_party.tgz
kdir() { [ "$1" = tt ] && echo "$PWD/kernels" || echo "$PWD/$V/v/$1"; }
kenv() { echo "TKPREFIX_FAMILIES=tree TKPREFIX_KERNELS_DIR=$(kdir $1) TKPREFIX_BUILD_DIR=/tmp/bt_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in head tt; do
  ( env $(kenv $v) MAX_JOBS=8 timeout 180 python3 -c "import tkprefix.build as b; b.load_extension(['tree'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s"; tail -2 /tmp/build_$v.log ) &
done
wait
for i in 1 2; do for v in head tt; do
  [ $(left) -gt 60 ] || break 2
  env $(kenv $v) timeout 120 python3 -m tkprefix.cli bench --only c8 --impls tk_tree --out $OUT/c8_${v}_$i \
    > $OUT/bench_${v}_$i.log 2>&1
  echo "bench $v $i rc=$? at $(el) s: $(tail -1 $OUT/bench_${v}_$i.log)"
done; done
python3 -m tkprefix.cli compare $OUT/c8_head_1 $OUT/c8_tt_1 2>&1 | tail -25
[ -d $OUT/c8_tt_2 ] && python3 -m tkprefix.cli compare $OUT/c8_head_2 $OUT/c8_tt_2 2>&1 | tail -8
[ $(left) -gt 15 ] && env $(kenv tt) timeout $(left) python3 -m pytest -q tests/gpu/test_tk_tree.py \
  > /tmp/pytest_tt.log 2>&1
echo "pytest tt rc=$? at $(el) s: $(tail -1 /tmp/pytest_tt.log)"; grep -m5 -E "^FAILED|Error" /tmp/pytest_tt.log
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for tool in racecheck memcheck; do
  [ $(left) -gt 15 ] || break
  env $(kenv tt) timeout $(left) $CS --tool $tool --print-limit 20 python3 -m pytest -q -p no:cacheprovider \
    tests/gpu/test_tk_tree.py -k sanitizer_small > /tmp/san_tt_$tool.log 2>&1
  echo "$tool tt rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/san_tt_$tool.log)"
  cp /tmp/san_tt_$tool.log $OUT/
done
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
