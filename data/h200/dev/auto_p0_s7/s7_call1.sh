#!/usr/bin/env bash
# Session 7, GPU call 1: build the working tree, the auto-dispatch tests, the crossover (TK decode vs SDPA where nothing
# is shared), and c1 with sdpa_naive / tk_hydragen / tk_auto through the harness.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/c1.log; st(){ echo "[c1 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" >> $L
timeout 240 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 150 python3 data/h200/dev/auto_p0_s7/crossover.py > $OUT/crossover.csv 2> $OUT/crossover.err; st "crossover rc=$? $(tail -1 $OUT/crossover.err)"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py -k "auto or nopad or graph" > $OUT/tests.log 2>&1; st "tests rc=$? $(tail -1 $OUT/tests.log)"
grep -E "^FAILED|^ERROR" $OUT/tests.log | head -8 >> $L
timeout 120 python3 -m tkprefix.cli bench --only c1 --impls sdpa_naive tk_hydragen tk_auto --out /tmp/b1 > /tmp/b1.log 2>&1; st "bench c1 rc=$? $(tail -1 /tmp/b1.log)"
cp /tmp/b1/bench_c1*.csv $OUT/bench_c1.csv 2>/dev/null
python3 - >> $L 2>&1 <<'PY'
import pandas as pd
d = pd.read_csv('/tmp/b1/bench_c1_system_prompt.csv'); d = d[(d.status == 'ok') & (d.prefix == 0)]
p = d.pivot_table(index=['batch', 'suffix', 'graph'], columns='impl', values='median_us')
print(p.assign(auto_vs_naive=p.sdpa_naive / p.tk_auto).round(3).to_string())
PY
st end
