#!/usr/bin/env bash
# Session 21 recording: third_party unpacked, then the README's live command (device_run.sh) until DL seconds.
[ -d third_party/ThunderKittens ] || tar xzf .dev/s21/third_party.tgz
TKPREFIX_RUN_DEADLINE_S=$DL bash scripts/bench/device_run.sh --omit-from paper > $OUT/run$N.log 2>&1
echo "device_run rc=$?"; tail -15 $OUT/run$N.log
