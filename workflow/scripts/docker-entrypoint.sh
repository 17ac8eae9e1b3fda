#!/usr/bin/env bash
# Docker entry: copy the artifact into the mounted output folder and run the pipeline there, offline.
#   docker run --rm --gpus all --network none -v "$PWD/out:/out" tkprefix [mode=auto|live|replay] [snakemake args...]
# Leaves /out/tkprefix/paper/build/tkprefix.pdf and /out/tkprefix/results/report.html.
set -euo pipefail
out=${TKPREFIX_OUT:-/out}
work="$out/tkprefix"
mode_arg=${1:-mode=auto}
shift || true
if [[ $mode_arg != mode=* ]]; then
    echo "usage: docker run ... tkprefix [mode=auto|live|replay] [snakemake args...]" >&2
    exit 2
fi
mkdir -p "$work"
# Fresh sources each run; results/ of an earlier run in the same folder are kept (Snakemake reruns what changed).
tar -C /opt/tkprefix --exclude=./results --exclude=./.snakemake -cf - . | tar -C "$work" -xf -
cd "$work"
tkprefix doctor || echo "(doctor found problems: mode=auto falls back to replay; mode=live will fail)"
snakemake --cores "$(nproc)" --resources gpu=1 --config "$mode_arg" "$@"
snakemake --cores 1 --config "$mode_arg" --report results/report.html
echo "paper: $work/paper/build/tkprefix.pdf   report: $work/results/report.html"
