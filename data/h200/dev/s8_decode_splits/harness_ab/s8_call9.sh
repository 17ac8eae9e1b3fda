#!/usr/bin/env bash
# Session 8, GPU call 9 (main 2ed823f; .dev/tk_hydragen_old.py = 9824e97:src/tkprefix/tk_hydragen.py, the rule
# before): the decode split rule, old against new, in the harness in one run.
set -u
R=$PWD; T0=$(date +%s); L=$OUT/s8c9.log; st(){ echo "[c9 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 60 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$?"
B="python3 -m tkprefix.cli bench --only c5 c2 c8 --impls tk_hydragen fasttree --deadline-s 50"
timeout 60 $B --out $OUT/new > $OUT/new.log 2>&1; st "new rc=$?"
cp src/tkprefix/tk_hydragen.py /tmp/tk_hydragen_new.py && cp .dev/tk_hydragen_old.py src/tkprefix/tk_hydragen.py
timeout 60 $B --out $OUT/old > $OUT/old.log 2>&1; st "old rc=$?"
cp /tmp/tk_hydragen_new.py src/tkprefix/tk_hydragen.py
cd $OUT && tar czf ab.tgz new old && rm -rf new old; st done
