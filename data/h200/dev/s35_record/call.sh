#!/usr/bin/env bash
# Session 35: the recording of data/h200 at main, only on an H200 (data/h100 already holds main's kernels). The carry
# is the README's live command's minus what the 64 MiB limit leaves out: third_party as .dev/s35/third_party.txz and
# .whl without the notebooks' wheels (the notebooks run here at replay; the recording needs only results/live).
#   TKPREFIX_GIT_COMMIT=<sha> DL=<s> bash data/h200/dev/s35_record/call.sh   (carry .whl, .dev/s35)
set -u
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
if [[ $GPU != *H200* ]]; then echo "not an H200 ($GPU): no recording"; exit 3; fi
[ -d third_party/ThunderKittens ] || tar xJf .dev/s35/third_party.txz
OMIT="--omit-from paper macros notebook_correctness notebook_performance notebook_peers notebook_e2e notebook_crossgpu"
TKPREFIX_GIT_DIRTY=0 TKPREFIX_RUN_DEADLINE_S=${DL:-540} bash scripts/bench/device_run.sh $OMIT
