#!/usr/bin/env bash
# Session 35 (prepared, not run: no device machine was lent): the decode inside the prefix kernel
# (prefix_decode=True), built and checked on the GPU machine. From the repository root of main, with
# third_party/ThunderKittens carried (TK at the pinned commit, 1.9 MB):
#   DL=<s> bash data/h200/dev/s35_prefix_decode/call.sh
# 0. applies prefix_decode.patch (this folder) unless the tree has it, 1. builds the Hydragen family, 2. runs its new GPU
# tests (test_prefix_decode*), 3. the A/B (ab.py), 4. compute-sanitizer memcheck and racecheck of
# scripts/device/sanitize_small.py (which runs the new path), 5. where time is left, ncu of one fused launch (c3 B2048
# 32/8 P4096 S64, ncu_one.py), 6. the whole Hydragen GPU test file. Also layout_probe.py (c1 P0 S512, ~15 s).
# Logs into $OUT/s35.tgz; a summary on stdout. ~480 s with DL=470, plus the machine's start. With
# third_party/chunk-attention carried too (scripts/peers/fetch_chunk_attn_upstream.sh), upstream ChunkAttention's
# module builds beside it for the recording that follows ($OUT/chunk_attn_lib.tgz).
set -u
DL=${DL:-480}
HERE=$(dirname "$0"); R=/tmp/s35; mkdir -p $R
[ -f third_party/ThunderKittens/include/kittens.cuh ] || { echo "carry third_party/ThunderKittens"; exit 2; }
source $HERE/../s26_call_lib.sh   # el, left (against DL), the build environment, CS (compute-sanitizer)
if [ ! -f kernels/hydragen/prefix_decode.cuh ]; then
  git apply $HERE/prefix_decode.patch || { echo "prefix_decode.patch does not apply to this tree"; exit 2; }
fi
# Upstream ChunkAttention's module for the recording after this call (its CMake build is build_peers' longest step,
# ~5-8 min, and makes a recording three calls instead of two): where third_party/chunk-attention is carried, it
# builds in the background, niced and in its own process group, while the GPU work runs, and comes back as
# chunk_attn_lib.tgz (unpack it into third_party/chunk-attention/src/chunk_attn: build_peers then reuses it).
CA_PG=
if [ -f third_party/chunk-attention/CMakeLists.txt ]; then
  setsid bash -c "JOBS=10 nice -n 15 bash scripts/peers/build_chunk_attn_upstream.sh > $R/chunk_attn_build.log 2>&1; \
    echo \"rc=\$? at \$(( \$(date +%s) - $T0 )) s\" >> $R/chunk_attn_build.log" &
  CA_PG=$!
fi
export TKPREFIX_FAMILIES=hydragen MAX_JOBS=6
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
python3 -m tkprefix.build --verbose > $R/build.log 2>&1; echo "build rc=$? at $(el) s"
grep -E "spill|error" $R/build.log | grep -v " 0 bytes spill" | head -8
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py -k prefix_decode > $R/pytest_pd.log 2>&1
echo "pytest prefix_decode rc=$? at $(el) s: $(tail -1 $R/pytest_pd.log)"
grep -E "^FAILED|Error|assert" $R/pytest_pd.log | head -12
timeout $(( $(left) - 200 > 60 ? $(left) - 200 : 60 )) python3 $HERE/ab.py $R/ab.csv 30 > $R/ab.log 2>&1
echo "ab rc=$? at $(el) s"; tail -30 $R/ab.log
for t in memcheck racecheck; do
  timeout 120 $CS --tool $t --print-limit 20 python3 scripts/device/sanitize_small.py > $R/san_$t.log 2>&1 &
done
wait
for t in memcheck racecheck; do
  echo "$t at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_$t.log) $(grep -c 'max err' $R/san_$t.log) cases"
  grep -E "prefix_decode|done" $R/san_$t.log | head -3
done
timeout 40 python3 $HERE/layout_probe.py $R/layout.csv > $R/layout.log 2>&1   # c1 P0 S512: the ties' cause?
echo "layout probe rc=$? at $(el) s"; cat $R/layout.log | tail -4
if [ $(left) -gt 200 ]; then   # where the fused kernel's time goes (tensor pipe, DRAM), one launch
  timeout 60 ncu --kernel-name regex:prefix_kernel --launch-skip 1 --launch-count 1 --section SpeedOfLight \
    --metrics sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    python3 $HERE/ncu_one.py > $R/ncu.log 2>&1
  echo "ncu rc=$? at $(el) s"; grep -E "Duration|Throughput|hmma|dram__" $R/ncu.log | head -12
fi
timeout $(( $(left) > 30 ? $(left) : 30 )) python3 -m pytest -q -p no:cacheprovider -x tests/gpu/test_tk_hydragen.py \
  > $R/pytest_all.log 2>&1
echo "pytest hydragen rc=$? at $(el) s: $(tail -1 $R/pytest_all.log)"
grep -E "^FAILED" $R/pytest_all.log | head -5
if [ -n "$CA_PG" ]; then   # wait for the module while the call has time, else stop its build
  while kill -0 $CA_PG 2>/dev/null && [ $(left) -gt 10 ]; do sleep 5; done
  kill -0 $CA_PG 2>/dev/null && kill -- -$CA_PG 2>/dev/null
  echo "upstream ChunkAttention: $(tail -2 $R/chunk_attn_build.log | tr '\n' ' ')"
  lib=third_party/chunk-attention/src/chunk_attn/lib
  [ -f $lib/BUILD_STAMP ] && tar czf $OUT/chunk_attn_lib.tgz -C third_party/chunk-attention/src/chunk_attn lib
fi
tar czf $OUT/s35.tgz -C /tmp s35
