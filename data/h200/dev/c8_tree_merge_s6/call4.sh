#!/usr/bin/env bash
# Session 6, GPU call 4 (dev, not recorded): a 4,096-leaf tree with a 4,096-token root through the harness (main).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/c4.log; st(){ echo "[c4 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens FASTTREE_ARTIFACT_ROOT=$R/third_party/FastTree-Artifact TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 100 python3 -m tkprefix.cli build > /tmp/build.log 2>&1; st "build rc=$?"
timeout 150 python3 -m tkprefix.cli bench --sweeps .dev/sweeps6 --only c8 --out $OUT/w > $OUT/bench.log 2>&1; st "bench rc=$? $(tail -1 $OUT/bench.log)"
python3 - >> $L 2>&1 <<'PY'
import pandas as pd, os
d=pd.read_csv(os.environ['OUT']+'/w/bench_c8_trees.csv')
print(d[['impl','dtype','graph','status','median_us','rel_err','sharing','sharing_ideal']].to_string())
PY
st end
