#!/usr/bin/env bash
# The GPU machine's side of a recorded run: what that machine (no network, Python 3.12 with torch) needs before the
# README's live command, then that command, unchanged. Carried beside the working tree: third_party/ThunderKittens
# (TK at the pinned commit) and .whl/ (made with network by scripts/bench/fetch_peer_wheels.sh).
#   TKPREFIX_GIT_COMMIT=<sha> TKPREFIX_GIT_DIRTY=0 [TKPREFIX_RUN_DEADLINE_S=550] [TKPREFIX_RESUME_FROM=results.tgz] \
#       bash scripts/bench/device_run.sh [extra snakemake args]
# e.g. `--omit-from paper` where the machine has no TeX: the run is then recorded and its paper built elsewhere
# (`tkprefix record`, then the README's main command). With $OUT set, results/ is packed into $OUT/results.tgz.
set -euo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
    # FlashInfer (a peer) and the pipeline's packages the machine lacks; --no-deps: the rest is in its image.
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .   # the `tkprefix` command, offline
export THUNDERKITTENS_ROOT=${THUNDERKITTENS_ROOT:-$PWD/third_party/ThunderKittens} TORCH_CUDA_ARCH_LIST=9.0a
# Every peer's source must be carried (scripts/bench/README.md, step 1): one left behind would only turn its rows into
# "not carried" (session 25's recording lost prior_tk_chunk_first's that way).
if ! tkprefix build-peers --check-sources && [ -z "${TKPREFIX_ALLOW_MISSING_PEERS:-}" ]; then
    echo "device_run: carry the sources above (TKPREFIX_ALLOW_MISSING_PEERS=1 records without them)" >&2
    exit 2
fi
if [ -n "${TKPREFIX_RESUME_FROM:-}" ]; then
    # A fresh machine taking over a run whose machine left after a deadline stop: build this commit's kernels and
    # peers (what the done build and build_peers jobs left on the old machine), then unpack that call's results.tgz
    # as it is. tar keeps the files' times, so Snakemake (no metadata needed) runs only the jobs left. Touching them
    # breaks that: a job's benchmark file counts as its output, and an input newer than it reruns the job. The
    # machine must have the GPU the run began on.
    tar xzf "$TKPREFIX_RESUME_FROM"
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    was=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["gpu"]["name"])' results/live/provenance.json)
    if [ "$gpu" != "$was" ]; then   # one run, one GPU
        echo "device_run: $TKPREFIX_RESUME_FROM was recorded on $was, this machine has $gpu; record anew" >&2
        exit 2
    fi
    tkprefix build --verbose > /tmp/resume_build.log 2>&1
    tkprefix build-peers > /tmp/resume_build_peers.log 2>&1
    echo "$(date -u +%FT%TZ) resumed from $TKPREFIX_RESUME_FROM on $gpu after rebuilding kernels and peers" \
        >> results/logs/live/resume.log
fi
status=0
if [ -n "${TKPREFIX_RUN_DEADLINE_S:-}" ]; then
    # A lease call shorter than the DAG: after the deadline, TERM the run's process group (Snakemake marks what was
    # running incomplete), pack what is done, and let the next call (same warm machine, nothing carried: builds,
    # results/ and FlashInfer's JIT cache stay) run this again to resume.
    setsid snakemake --workflow-profile workflow/profiles/local --config mode=live "$@" &
    run=$!
    (sleep "$TKPREFIX_RUN_DEADLINE_S"; echo "[device_run] deadline ${TKPREFIX_RUN_DEADLINE_S} s: stopping the run" >&2
     kill -TERM -- -$run 2>/dev/null; sleep 20; kill -KILL -- -$run 2>/dev/null) &
    timer=$!
    wait $run || status=$?
    kill $timer 2>/dev/null || true
else
    snakemake --workflow-profile workflow/profiles/local --config mode=live "$@" || status=$?
fi
if [ -n "${OUT:-}" ]; then
    tar czf "$OUT/results.tgz" results/live results/logs results/benchmarks
    # upstream ChunkAttention's module and its build stamp: unpacked into the carried third_party/ it saves the next
    # fresh machine the longest build (scripts/peers/build_chunk_attn_upstream.sh reuses a module of the same stamp)
    lib=third_party/chunk-attention/src/chunk_attn/lib
    if [ -f "$lib/BUILD_STAMP" ]; then
        tar czf "$OUT/chunk_attn_lib.tgz" -C third_party/chunk-attention/src/chunk_attn lib
    fi
fi
exit $status
