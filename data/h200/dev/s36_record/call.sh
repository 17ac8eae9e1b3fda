#!/usr/bin/env bash
# Session 36: the recording of main (with the decode inside the prefix kernel) on whichever GPU the call gets
# (data/h100 on an H100, data/h200 on an H200: `tkprefix record` names the folder by the GPU). The carry is the
# README's live command's less what the 64 MiB limit leaves out: third_party as .dev/s36/third_party.txz (TK, the
# tree peers' sources, the prior TK kernel, upstream ChunkAttention's sources with the module that session 36's first
# call built, so build_peers reuses it) and .whl without the notebooks' wheels (the notebooks run here at replay; the
# recording needs only results/live).
#   TKPREFIX_GIT_COMMIT=<sha> DL=<s> bash data/h200/dev/s36_record/call.sh   (carry .whl, .dev/s36)
# A second call at once on the warm machine resumes (same command); on a fresh machine add
# TKPREFIX_RESUME_FROM=<the first call's results.tgz> (carried).
set -u
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
[ -d third_party/ThunderKittens ] || tar xJf .dev/s36/third_party.txz
OMIT="--omit-from paper macros notebook_correctness notebook_performance notebook_peers notebook_e2e notebook_crossgpu"
TKPREFIX_GIT_DIRTY=0 TKPREFIX_RUN_DEADLINE_S=${DL:-540} bash scripts/bench/device_run.sh $OMIT
