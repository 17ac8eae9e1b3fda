#!/usr/bin/env bash
# One device call of the ChunkAttention work: GPU tests, compute-sanitizer (memcheck, racecheck); benchmarks are the
# harness's (`tkprefix bench`, config/sweeps).
# Usage on the GPU machine (repo root, third_party/ThunderKittens carried): bash scripts/chunk/device_run.sh OUTDIR [what...]
# what: any of tests sanitize (default: tests sanitize)
set -uo pipefail
OUT=${1:?outdir}; shift
WHAT=${*:-tests sanitize}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1   # kernels through tkprefix.build (the one loader)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
for w in $WHAT; do
  case $w in
    tests)
      timeout 150 python -m pytest -q -rs -s tests/gpu/test_tk_chunk.py -p no:cacheprovider 2>&1 | tee "$OUT/pytest.log" | grep -v "^$" | tail -40 ;;
    sanitize)
      CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
      for tool in memcheck racecheck; do
        echo "== $tool"
        timeout 120 "$CS" --tool $tool --print-limit 20 python scripts/chunk/sanitize_case.py > "$OUT/$tool.log" 2>&1
        echo "rc=$?" >> "$OUT/$tool.log"; tail -6 "$OUT/$tool.log"
      done ;;
  esac
done
