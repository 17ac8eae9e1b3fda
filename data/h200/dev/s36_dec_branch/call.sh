#!/usr/bin/env bash
# Session 36: does the prefix kernel's decode-warpgroup branch cost the kernels without it? At 444c4fd (recorded in
# data/h100) `if (wg == DECODE_WG)` stays in the DEC=false kernels as a runtime test and reorders their code; with
# `DEC && wg == DECODE_WG` their SASS is instruction for instruction that of 45a102e (cuobjdump, here). Builds rec
# (.dev/s36b/v/rec = `git archive 444c4fd kernels`) and this tree's kernels, then ab_s0.py alternated
# rec/this/rec/this; then, time left, ncu of the decode kernel alone on c3's suffix-64 shapes (ncu_decode.py).
# From the repository root, third_party/ThunderKittens and .dev/s36b carried:
#   DL=240 V=.dev/s36b bash data/h200/dev/s36_dec_branch/call.sh
set -u
HERE=$(dirname "$0"); source $HERE/../s26_call_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
kbuild hydragen 8 150 rec this
echo "tag,B,Hq,Hkv,P,S,median_us" > $OUT/ab_s0.csv
for i in 1 2; do for v in rec this; do
  [ $(left) -gt 25 ] || break 2
  env $(kenv hydragen $v) TAG=$v timeout 60 python3 $HERE/ab_s0.py >> $OUT/ab_s0.csv 2>> $OUT/ab.err
  echo "ab_s0 $v rc=$? at $(el) s"
done; done
if [ $(left) -gt 50 ]; then   # the decode alone at suffix 64: where its time goes (two launches of each shape)
  env $(kenv hydragen this) timeout $(( $(left) - 15 )) ncu --kernel-name regex:decode --launch-skip 2 \
    --launch-count 4 --set full python3 $HERE/ncu_decode.py > $OUT/ncu_decode.log 2>&1
  echo "ncu decode rc=$? at $(el) s"; grep -E "^  [a-z_:<>]+decode|Duration|DRAM Throughput|Registers Per|Achieved Occ|Block Limit" \
    $OUT/ncu_decode.log | head -24
fi
python3 - $OUT/ab_s0.csv <<'PY'
import sys, pandas as pd
d = pd.read_csv(sys.argv[1]); m = d.groupby(["tag", "B", "Hq", "Hkv", "P", "S"]).median_us.median().unstack("tag")
m["this/rec"] = m["this"] / m["rec"]; print(m.round(3).to_string())
PY
