#!/usr/bin/env bash
# Docker entry: copy the artifact into the mounted output folder and run the pipeline there, offline.
#   mkdir -p out && docker run --rm --gpus all --network none --user "$(id -u):$(id -g)" -v "$PWD/out:/out" \
#       tkprefix [mode=auto|live|replay] [snakemake args...]
# Leaves /out/tkprefix/paper/build/tkprefix.pdf and /out/tkprefix/results/report.html.
set -euo pipefail
out=${TKPREFIX_OUT:-/out}
work="$out/tkprefix"
mode_arg=${1:-mode=auto}
if (($#)); then shift; fi
if [[ $mode_arg != mode=* ]]; then
    echo "usage: docker run ... tkprefix [mode=auto|live|replay] [snakemake args...]" >&2
    exit 2
fi
# A ./out that Docker created itself (it did not exist on the host) belongs to root: say how to fix it, then stop.
probe="$out/.tkprefix-write-test.$$"
if ! { touch "$probe" && rm -f "$probe"; } 2>/dev/null; then
    echo "error: $out is not writable by uid $(id -u) gid $(id -g) (it is $(stat -c '%U:%G %A' "$out"))." >&2
    echo "fix: create the output folder yourself and run as yourself:" >&2
    echo "  mkdir -p out && docker run --rm [--gpus all] --network none --user \"\$(id -u):\$(id -g)\" \\" >&2
    echo "      -v \"\$PWD/out:/out\" tkprefix [mode=...]" >&2
    echo "  (an ./out that Docker already made: sudo chown \"\$(id -u):\$(id -g)\" out)" >&2
    exit 2
fi
mkdir -p "$work"
# Fresh sources each run; results/ of an earlier run in the same folder are kept (Snakemake reruns what changed).
tar -C /opt/tkprefix --exclude=./results --exclude=./.snakemake -cf - . | tar -C "$work" -xf -
cd "$work"
if ! tkprefix doctor; then
    echo "(doctor found problems: mode=auto falls back to replay; mode=live will fail)"
fi
snakemake --cores "$(nproc)" --resources gpu=1 --config "$mode_arg" "$@"
snakemake --cores 1 --config "$mode_arg" --report results/report.html
echo "paper: $work/paper/build/tkprefix.pdf   report: $work/results/report.html"
