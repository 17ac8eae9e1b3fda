#!/usr/bin/env bash
set -u
R=$PWD; T0=$(date +%s); L=$OUT/call.log; st(){ echo "[c2 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
timeout 100 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$? $(tail -1 $OUT/build.log)"
timeout 120 python3 -m pytest -q -x tests/gpu/test_tk_chunk.py tests/gpu/test_tk_tree.py > $OUT/pytest.log 2>&1; st "pytest rc=$? $(tail -1 $OUT/pytest.log)"
timeout 200 python3 -m tkprefix.cli bench --only c4_chunk_first --impls sdpa_hydragen tk_hydragen tk_chunk_attn tk_chunk_first --out $OUT/c4 > $OUT/bench.log 2>&1; st "bench rc=$? $(tail -1 $OUT/bench.log)"
