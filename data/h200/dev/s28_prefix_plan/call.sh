#!/usr/bin/env bash
# Session 28, call 4 (main's kernels, after the recording): sweep.py (the prefix kernel's plan on the prefix-only
# shapes of c3 and c4 against every (consumer_warpgroups, n_splits)), then the PDL negative control three times on a
# build without the griddepcontrol.wait calls (nowait), with each test path's outcome (-rA): which of the three paths
# catches a read before the prefix ends (../s28_verify: 1 of 3 did). Stops itself at $DL s. From the repository
# root, with .dev/s28/third_party.tgz:   DL=300 V=.dev/s28 bash data/h200/dev/s28_prefix_plan/call.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
L=$OUT/call.log
rm -rf $V/v/nowait && mkdir -p $V/v/nowait && cp -r kernels/. $V/v/nowait/
sed -i '/wait_for_prior_grid();/d' $V/v/nowait/hydragen/decode.cu $V/v/nowait/hydragen/merge.cu
(
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild hydragen 8 200 this nowait
env $(kenv hydragen this) timeout $(( $(left) - 60 )) python3 $HERE/sweep.py > $OUT/sweep.csv 2> /tmp/sweep.err
echo "sweep rc=$? at $(el) s"; tail -3 /tmp/sweep.err
for i in 1 2 3; do
  [ $(left) -gt 20 ] || break
  env $(kenv hydragen nowait) timeout 40 python3 -m pytest -q -p no:cacheprovider -rA tests/gpu/test_tk_hydragen.py \
    -k pdl_launches > /tmp/nowait_$i.log 2>&1
  echo "nowait run $i rc=$? at $(el) s"; grep -E "^(PASSED|FAILED)|^E +AssertionError|passed|failed" /tmp/nowait_$i.log
done
) >> $L 2>&1
echo "done at $(el) s" >> $L; cat $L
