#!/usr/bin/env bash
# Session 20, call 4: the ncu reports of call 2 (B1024 32/8 P2048, ours and FlashInfer FA3) read back on the GPU machine
# (this machine has no ncu): raw metrics, per-instruction SASS source counters and every details section.
set -u
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
mkdir -p /tmp/o
for r in .dev/s20/reps/*.ncu-rep; do
  b=$(basename $r .ncu-rep)
  $NCU --import $r --page raw --csv > /tmp/o/raw_$b.csv 2>&1; echo "raw $b rc=$?"
  $NCU --import $r --page source --csv --print-source sass > /tmp/o/src_$b.csv 2>&1; echo "src $b rc=$?"
  $NCU --import $r --page details --print-details all > /tmp/o/det_$b.txt 2>&1; echo "det $b rc=$?"
done
ls -la /tmp/o
tar czf $OUT/ncu_pages.tgz -C /tmp o
