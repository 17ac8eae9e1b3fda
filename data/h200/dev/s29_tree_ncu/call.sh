#!/usr/bin/env bash
# Session 29 (prepared without a GPU, NOT RUN): ncu of the tree's two kernels (the wgmma kernel of the shared nodes,
# the decode kernel of the leaves) on the two trees furthest from their floor, wide4096 (2.88x) and binary10 (2.76x),
# for main's warp-per-unit decode ("this") and the block-per-unit tile decode of branch s26-tree-tile ("tile":
# $V/tile_tree's three files over this tree's kernels/), which measured 1.12x slower over c8 in session 28. Per
# (variant, tree): the third eager call's two kernels. Writes $OUT/call.log and $OUT/ncu.tgz. Stops itself at $DL s.
# From the repository root, with $V/third_party.tgz:
#   DL=300 V=.dev/s29 bash data/h200/dev/s29_tree_ncu/call.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
L=$OUT/call.log
rm -rf $V/v/tile && mkdir -p $V/v/tile && cp -r kernels/. $V/v/tile/ && cp $V/tile_tree/* $V/v/tile/tree/
SEC="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats"
SEC="$SEC --section MemoryWorkloadAnalysis --section SourceCounters"
HEADLINES="^  [a-z_]+_kernel|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per"
HEADLINES="$HEADLINES|Issued Warp Per|No Eligible|leaves"   # the lines of each report call.log keeps
mkdir -p /tmp/ncu
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv
kbuild tree 8 240 this tile
for tree in wide4096 binary10; do
  for v in this tile; do
    [ $(left) -gt 40 ] || { echo "ncu $v $tree: skipped at $(el) s (deadline)"; continue; }
    env $(kenv tree $v) TREE=$tree timeout $(( $(left) - 20 )) ncu -k "regex:tree_(attend|decode|tile)_kernel" \
      -s 4 -c 2 --clock-control none $SEC python3 $HERE/ncu_tree.py > /tmp/ncu/${v}_$tree.txt 2>&1
    echo "== ncu $v $tree rc=$? at $(el) s"
    grep -E "$HEADLINES" /tmp/ncu/${v}_$tree.txt | head -14
  done
done
tar czf $OUT/ncu.tgz -C /tmp ncu
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
