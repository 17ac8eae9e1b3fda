#!/usr/bin/env bash
# One device call for the Hydragen kernels: build -> SASS check -> GPU tests -> compute-sanitizer (benchmarks: the
# harness, `tkprefix bench` / the live pipeline).
# Usage (device machine, repo root): bash scripts/device/run_hydragen.sh [steps...]   steps default: build sass test sanitize
# Logs and CSVs go to $OUT (or ./out). Each step is time-limited so a hang cannot eat the whole call.
set -uo pipefail
OUT=${OUT:-$PWD/out}; mkdir -p "$OUT"
export THUNDERKITTENS_ROOT=${THUNDERKITTENS_ROOT:-$PWD/third_party/ThunderKittens}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
export TKPREFIX_FAMILIES=${TKPREFIX_FAMILIES:-hydragen}
export TKPREFIX_BUILD_DIR=${TKPREFIX_BUILD_DIR:-/tmp/tkp_build}
STEPS=${*:-build sass test sanitize}
PY=python3
for step in $STEPS; do
  echo "=== $step $(date -u +%T)"
  case $step in
    env)   nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv; nvcc --version | tail -1
           $PY -c "import torch;print(torch.__version__, torch.version.cuda)";;
    build) timeout 240 $PY -m tkprefix.build --verbose > "$OUT/build.log" 2>&1; rc=$?
           grep -E "ptxas info|spill|error|warning|built" "$OUT/build.log" | grep -v "^$" | tail -40; echo "build rc=$rc"
           [ $rc -eq 0 ] || { tail -60 "$OUT/build.log"; exit 1; };;
    sass)  so=$(ls $TKPREFIX_BUILD_DIR/*/*.so | head -1)
           cuobjdump -sass "$so" > "$OUT/sass.txt" 2>&1
           echo "HGMMA: $(grep -c HGMMA "$OUT/sass.txt")  UTMALDG: $(grep -c UTMALDG "$OUT/sass.txt")  LDL/STL: $(grep -c -E '\bLDL|\bSTL' "$OUT/sass.txt")"
           gzip -f "$OUT/sass.txt";;
    test)  timeout 150 $PY -m pytest tests/gpu/test_tk_hydragen.py -q --maxfail=25 --timeout=60 --timeout-method=thread -p no:cacheprovider ${PYTEST_ARGS:-} ${PYTEST_K:+-k "$PYTEST_K"} \
              > "$OUT/pytest.log" 2>&1; echo "pytest rc=$?"; tail -25 "$OUT/pytest.log";;
    ncu)   timeout 120 ncu -k regex:"prefix_kernel|decode_kernel" -c 3 --clock-control none --section SpeedOfLight \
             --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats $PY scripts/device/prefix_probe.py \
             > "$OUT/ncu.log" 2>&1; echo "ncu rc=$?"
           grep -E "prefix_kernel|decode_kernel|Memory Throughput|DRAM Throughput|Duration|Compute \(SM\) Throughput|L2 Hit|Achieved Occupancy" "$OUT/ncu.log" | head -40;;
    buildall)   # every kernel family in one extension (kernels/binding.cpp compiles each family's section)
           TKPREFIX_FAMILIES= timeout 200 $PY -c "import tkprefix.build as b; m = b.load_extension(); print('families', b.available_families(), 'has_chunk_ops', m.has_chunk_ops, 'ops', [n for n in dir(m) if not n.startswith('_')])" \
             > "$OUT/buildall.log" 2>&1; echo "buildall rc=$?"; tail -3 "$OUT/buildall.log";;
    probes) # harness probes (config/probes: c1 without sharing, c3 suffix 512), graph replay; PROBES_ONLY=p3 for one
           timeout ${PROBES_TIMEOUT:-120} $PY -m tkprefix.cli bench --sweeps config/probes ${PROBES_ONLY:+--only $PROBES_ONLY} \
             --out "$OUT/probes" --deadline-s $(( ${PROBES_TIMEOUT:-120} - 20 )) > "$OUT/probes.log" 2>&1
           echo "probes rc=$?"; tail -5 "$OUT/probes.log";;
    sanitize)
           for tool in memcheck racecheck; do
             timeout 60 compute-sanitizer --tool $tool --print-limit 20 $PY scripts/device/sanitize_small.py \
               > "$OUT/sanitize_$tool.log" 2>&1; echo "$tool rc=$?"; tail -6 "$OUT/sanitize_$tool.log"
           done;;
  esac
done
echo "=== done $(date -u +%T)"
