#!/usr/bin/env bash
# Session 20, call 6: the overlapped prefix loop with the softmax beside the P V (variants in .dev/s20/v2, patches
# here): head (main 24367a3), selmask (keys past P masked by selects, the next q loaded after the loop), nomask (the
# same without the mask: a bound, wrong where P % 128 != 0), peel (the last tile's step peeled, masked there only).
# Per variant: a hydragen-only build; where the loop's wgmma wait sits in SASS; ab.py alternated twice; ncu cycles on
# c3 B1024 32/8 P2048; GPU tests and sanitizers on selmask and peel.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s20/third_party.tgz
D=data/h200/dev/s20_softmax_overlap
V="head selmask nomask peel"
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in $V; do
  ( TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s20/v2/$v TKPREFIX_BUILD_DIR=/tmp/b_$v MAX_JOBS=4 \
      timeout 300 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > /tmp/build_$v.log 2>&1
    echo "build $v rc=$? at $(el) s" ) &
done
wait
CUOBJ=$(command -v cuobjdump || ls /usr/local/cuda*/bin/cuobjdump | head -1)
for v in $V; do
  so=$(find /tmp/b_$v -name "*.so" | head -1)
  $CUOBJ -sass -fun '_ZN3tkp6prefix13prefix_kernelI13__nv_bfloat16Li128ELi2ELb1ELi128EEEvNS0_7globalsE' $so \
    | grep -n "WARPGROUP.DEPBAR\|HGMMA.*tnspB.*gsb0\|MUFU.EX2" | awk -v v=$v '{print v": "$1" "$3" "$4" "$5}' \
    | awk '{k=$3} k!=p{if(p!="")print f" x"n; f=$0; n=0} {n++; p=k} END{print f" x"n}' > /tmp/sass_$v.txt
done
cat /tmp/sass_*.txt > $OUT/sass_waits.txt
echo "tag,B,Hq,Hkv,P,median_us,tflops,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in $V; do
  TAG=$v TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s20/v2/$v TKPREFIX_BUILD_DIR=/tmp/b_$v timeout 60 \
    python3 data/h200/dev/s20_overlap_tile/ab.py >> $OUT/ab.csv 2>>/tmp/ab.err; echo "ab $v rc=$? at $(el) s"
done; done
tail -3 /tmp/ab.err
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
for v in $V; do
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s20/v2/$v TKPREFIX_BUILD_DIR=/tmp/b_$v timeout 60 \
    $NCU --profile-from-start off --metrics sm__cycles_elapsed.max,sm__cycles_active.avg,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active \
    --csv python3 data/h200/dev/s20_fa3_ncu/measure.py ncu tk_hydragen 1024 32 8 2048 > /tmp/ncu_$v.csv 2>&1
  echo "ncu $v rc=$? at $(el) s"; grep -h '"sm__\|"smsp__' /tmp/ncu_$v.csv | sed "s/^/$v,/" >> $OUT/ncu.csv
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
for v in selmask peel; do
  export TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s20/v2/$v TKPREFIX_BUILD_DIR=/tmp/b_$v
  timeout 120 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > $OUT/pytest_$v.log 2>&1
  echo "pytest $v rc=$? at $(el) s: $(tail -1 $OUT/pytest_$v.log)"
  for tool in memcheck racecheck; do
    timeout 100 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > /tmp/san_${tool}_$v.log 2>&1
    echo "$tool $v rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/san_${tool}_$v.log)"
  done
  unset TKPREFIX_FAMILIES TKPREFIX_KERNELS_DIR TKPREFIX_BUILD_DIR
done
) >> $L 2>&1
echo "done at $(el) s" >> $L
