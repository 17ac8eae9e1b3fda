#!/usr/bin/env bash
# Session 6, GPU call 2. A = main, B = wip6-merge (merge kernel: lane-parallel lse, batched o loads). Prepare: rm -rf .dev/trees/{A,B}; mkdir -p .dev/trees/{A,B}; git archive main | tar -x -C .dev/trees/A; git archive wip6-merge | tar -x -C .dev/trees/B; carry .dev third_party
set -u
R=$PWD; T0=$(date +%s); L=$OUT/c2.log; st(){ echo "[c2 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens FASTTREE_ARTIFACT_ROOT=$R/third_party/FastTree-Artifact TORCH_CUDA_ARCH_LIST=9.0a
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
for t in A B; do (cd .dev/trees/$t; ln -sfn $R/third_party third_party; PYTHONPATH=$PWD/src timeout 200 python3 -m tkprefix.cli build > /tmp/build_$t.log 2>&1; echo "rc=$?" >> /tmp/build_$t.log) & done; wait
st "builds: A $(tail -1 /tmp/build_A.log) B $(tail -1 /tmp/build_B.log)"
bench(){ timeout 130 python3 -m tkprefix.cli bench --only c8 --impls tk_tree fasttree deft tk_chunk_attn tk_hydragen --out /tmp/t$1 > /tmp/b$1.log 2>&1; st "$1 bench rc=$? $(tail -1 /tmp/b$1.log)"; cp /tmp/t$1/bench_c8_trees.csv $OUT/bench_c8_$1.csv 2>/dev/null; }
bench4(){ timeout 120 python3 -m tkprefix.cli bench --only c4 --impls tk_chunk_attn tk_chunk_first sdpa_hydragen --out /tmp/u$1 > /tmp/u$1.log 2>&1; st "$1 bench c4 rc=$? $(tail -1 /tmp/u$1.log)"; cp /tmp/u$1/bench_c4*.csv $OUT/bench_c4_$1.csv 2>/dev/null; }
cd $R/.dev/trees/B; export PYTHONPATH=$PWD/src
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_tree.py tests/gpu/test_tk_chunk.py tests/gpu/test_readme_gpu.py > $OUT/tests_B.log 2>&1; rc=$?; st "B tests rc=$rc: $(tail -1 $OUT/tests_B.log)"
grep -E "^FAILED|^ERROR" $OUT/tests_B.log | head -6 >> $L
if [ $rc = 0 ]; then
  for tool in racecheck memcheck synccheck; do timeout 50 compute-sanitizer --tool $tool --print-limit 50 python3 -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_tree.py -k "sanitizer or short_nodes or hold or merge_of" > /tmp/s.log 2>&1; st "B $tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/s.log | tail -1) $(grep -E 'passed|failed' /tmp/s.log | tail -1)"; done
  for tool in racecheck memcheck; do timeout 60 compute-sanitizer --tool $tool --print-limit 50 python3 -m pytest -x -q -p no:cacheprovider tests/gpu/test_tk_chunk.py -k "stale_nan or wide_shared" > /tmp/s.log 2>&1; st "B chunk $tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/s.log | tail -1) $(grep -E 'passed|failed' /tmp/s.log | tail -1)"; done
  timeout 60 python3 -m tkprefix.cli check --out /tmp/chk > /tmp/chk.log 2>&1; st "B check rc=$? $(tail -1 /tmp/chk.log)"; cp /tmp/chk/check.csv $OUT/check_B.csv
  bench B; bench4 B
fi
timeout 90 python3 $R/.dev/floor.py > $OUT/floor_B.csv 2>/tmp/fl.err; st "floor B rc=$? $(tail -1 /tmp/fl.err)"
cd $R/.dev/trees/A; export PYTHONPATH=$PWD/src; bench A; bench4 A
python3 - >> $L 2>&1 <<'PY'
import pandas as pd, numpy as np, glob
for f in sorted(glob.glob('/tmp/t*/bench_c8_trees.csv')):
    d=pd.read_csv(f); d=d[d.status=='ok']
    p=d.pivot_table(index=['tree','dtype','graph'],columns='impl',values='median_us')
    ours=p[[c for c in p.columns if c.startswith('tk_')]].min(axis=1); peer=p[[c for c in p.columns if not c.startswith('tk_')]].min(axis=1)
    r=(peer/ours).rename('ratio'); print(f); print(pd.concat([p.round(1), r.round(3)], axis=1).to_string())
    print(r.groupby(level=['dtype','graph']).apply(lambda x: np.exp(np.log(x).mean())).round(3).to_string(), 'min', r.min().round(3))
for f in sorted(glob.glob('/tmp/u*/bench_c4*.csv')):
    d=pd.read_csv(f); d=d[d.status=='ok']
    p=d.pivot_table(index=['batch','q_heads','dtype','graph'],columns='impl',values='median_us')
    print(f); print((p.round(1)).assign(r=(p.sdpa_hydragen/p.tk_chunk_attn).round(3)).to_string())
    print('geomean tk_chunk_attn vs sdpa_hydragen', np.exp(np.log(p.sdpa_hydragen/p.tk_chunk_attn).mean()).round(3))
PY
st end
