#!/usr/bin/env bash
# Session 8, GPU call 1 (from the repository root, branch wip8-tree-levels for the bench steps): memcheck
# rerun of s7's prefix report; tk_tree on level cases (dev bench, ours + FastTree).
set -u
R=$PWD; T0=$(date +%s); L=$OUT/s8c1.log; st(){ echo "[c1 $(( $(date +%s)-T0 ))s] $*" | tee -a $L; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$R/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$R/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
timeout 120 python3 -m tkprefix.cli build > $OUT/build.log 2>&1; st "build rc=$?"
timeout 120 compute-sanitizer --tool memcheck --print-limit 12 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tk_hydragen.py -k "B256_Bp1_N1_H32-8_P1500 and 128-bf16 and cw_auto" > $OUT/memcheck_prefix.log 2>&1; st "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck_prefix.log | tail -1) $(tail -1 $OUT/memcheck_prefix.log)"
timeout 130 python3 -m tkprefix.cli bench --only c5 c3 --impls tk_tree tk_hydragen tk_chunk_attn fasttree --out $OUT/lv_a --deadline-s 120 > $OUT/bench_a.log 2>&1; st "bench c5 c3 rc=$?"
timeout 95 python3 -m tkprefix.cli bench --only c1 c2 --every 2 --impls tk_tree tk_hydragen tk_chunk_attn --out $OUT/lv_b --deadline-s 85 > $OUT/bench_b.log 2>&1; st "bench c1 c2 rc=$?"
cd $OUT && tar czf lv.tgz lv_a lv_b && rm -rf lv_a lv_b; st done
