#!/usr/bin/env bash
# CI: prove the Docker image's own software without Docker (no Docker engine on the CI machines). Two steps; any
# failed command fails the script (set -e, pipefail; nothing masked):
#
#   python   A clean venv of the image's Python minor (Dockerfile `ARG PYTHON`), then the Dockerfile's pip lines
#            tagged `# ci-stack`, verbatim but for two swaps: /opt/tkprefix -> a copy of this checkout, and no
#            `--index-url` (PyPI's torch 2.5.1 for Linux x86_64 *is* the cu124 build the image takes from
#            download.pytorch.org, which CI cannot reach, not a CPU build; it runs on the CPU here). Every package
#            installed must be pinned, at that version, in docker/constraints.txt. Then, in that venv and that copy:
#            `python -m pytest -q` and the replay pipeline to the PDF. The peers (flashinfer, flash-attn, upstream
#            Hydragen, ChunkAttention) need CUDA and a GPU to build or run: they are not part of this check.
#   kernels  The five .cu files and the binding, compiled as the image compiles them: CUDA 12.6 headers, libdevice
#            and ptxas (PyPI: nvidia-cuda-{runtime,cccl,nvcc}-cu12 12.6), torch 2.5.1's cpp_extension flags plus
#            src/tkprefix/build.py's (read from build.extension_args, written by torch's own ninja writer),
#            -gencode arch=compute_90a,code=sm_90a, TK 0b55588d with docker/patches/tk-0b55588d-cuda-lt-12.8.patch.
#            First it checks that prefix.cu fails WITHOUT the patch, with the known error (so the step can fail).
#            No registry reachable here ships a CUDA 12.6 nvcc front end (PyPI's 12.x nvcc wheels hold only ptxas,
#            libnvvm and libdevice; Debian's newest is 12.5.40): the front end (nvcc driver, cicc, cudafe++,
#            fatbinary) is Debian's 12.5.40, pinned by sha256. Both emit PTX ISA 8.5; the SASS comes from ptxas 12.6.
#            Leaves build/cuda126/: <family>/<stem>.o + libcudart.so.12 + MANIFEST, which the loader links on a GPU
#            machine with TKPREFIX_PREBUILT_OBJECTS=build/cuda126 (src/tkprefix/build.py).
#            Needs ThunderKittens at the pinned commit ($THUNDERKITTENS_ROOT, third_party/ThunderKittens, or the
#            cached copy an earlier run made); GitHub is unreachable from CI, so without it the step stops with
#            "NOT RUN" and the reason, and exit status 3.
#
# Usage: bash scripts/ci_image_stack.sh [python|kernels|all]        (default: all)
# Downloads are cached in $TKPREFIX_CI_CACHE (default ~/.cache/tkprefix-ci) and pip's cache; the venv and the copy
# of the checkout are made anew each run in $TKPREFIX_CI_WORK (default $TKPREFIX_CI_CACHE/image-stack, ~5 GB: torch
# 2.5.1 with its CUDA 12.4 libraries). Prints each step's time.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROOT=$PWD
WHAT=${1:-all}
CACHE=${TKPREFIX_CI_CACHE:-$HOME/.cache/tkprefix-ci}
# venv + copy of the checkout, outside any git repository (tests that ask git what the checkout holds must not find
# the enclosing one, where the copy would be an ignored folder)
WORK=${TKPREFIX_CI_WORK:-$CACHE/image-stack}
OUT=$ROOT/build/cuda126                # git-ignored: the 12.6-built objects
TK_COMMIT=0b55588d2769dde0c7a9a606ffc015b0ca7a9551
TK_TREE_SHA=f41b331b67476b5e5b08d81a55d243517673fe4c200ce46fd0f92595af0c66f0   # sha256 of TK's include/ + prototype/
PATCH=$ROOT/docker/patches/tk-0b55588d-cuda-lt-12.8.patch
FRONTEND_DEB=nvidia-cuda-toolkit_12.5.40~12.5.0-2+b1_amd64.deb
FRONTEND_SHA=88573e2a8626687cd201af953ed3086f2929c8c8914667d552f27b602f2cad68
mkdir -p "$CACHE" "$WORK"
log() { echo "[ci_image_stack] $*"; }
since() { echo "$(( $(date +%s) - $1 )) s"; }

dockerfile_python() { sed -n 's/^ARG PYTHON=\(python3\.[0-9]*\)$/\1/p' Dockerfile; }
# The Dockerfile's `# ci-stack` RUN lines, with the two swaps described above.
ci_stack_lines() {
    sed -n 's/^RUN \(.*\)  # ci-stack$/\1/p' Dockerfile \
        | sed -e 's| --index-url https://download.pytorch.org/whl/cu124||' -e "s|/opt/tkprefix|$WORK/src|g"
}

# ------------------------------------------------------------------------------------------------------ python
step_python() {
    local t0 py venv
    t0=$(date +%s)
    py=$(dockerfile_python)
    [[ -n $py ]] || { log "no 'ARG PYTHON=python3.N' line in the Dockerfile"; return 1; }
    command -v "$py" >/dev/null || { log "$py (the image's Python) is not installed here"; return 1; }
    venv=$WORK/venv
    rm -rf "$venv" "$WORK/src"
    "$py" -m venv "$venv"
    # A copy of the checkout (sources and recorded data, no outputs), so the pipeline really runs from scratch.
    mkdir -p "$WORK/src"
    tar -C "$ROOT" --exclude=./.git --exclude=./build --exclude=./results --exclude=./.snakemake \
        --exclude=./paper/build --exclude=./third_party --exclude='*.egg-info' -cf - . | tar -C "$WORK/src" -xf -
    log "venv: $("$venv/bin/python" --version) from $py; the Dockerfile's ci-stack lines:"
    local n=0 line
    while IFS= read -r line; do
        n=$((n + 1))
        log "  \$ $line"
        ( cd "$WORK" && VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH PIP_QUIET=1 bash -euo pipefail -c "$line" )
    done < <(ci_stack_lines)
    [[ $n -eq 4 ]] || { log "expected 4 ci-stack lines in the Dockerfile, found $n"; return 1; }
    "$venv/bin/python" -c "import torch, tkprefix, snakemake; print('torch', torch.__version__, '| tkprefix from',
tkprefix.__file__)"
    # docker/constraints.txt pins every package the lines installed: a new dependency must be pinned there too
    local unpinned
    unpinned=$(comm -13 <(grep -v '^#' docker/constraints.txt | tr 'A-Z_' 'a-z-' | sort) \
        <("$venv/bin/pip" freeze --exclude-editable | tr 'A-Z_' 'a-z-' | sort))
    [[ -z $unpinned ]] || { log "installed but not pinned as installed in docker/constraints.txt:"; echo "$unpinned"
                            return 1; }
    log "install: $(since "$t0")"
    local t1; t1=$(date +%s)
    ( cd "$WORK/src" && VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH python -m pytest -q -p no:cacheprovider )
    log "pytest (torch 2.5.1 venv): $(since "$t1")"
    local t2; t2=$(date +%s)
    ( cd "$WORK/src" && VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH snakemake --cores 2 --config mode=replay )
    test -s "$WORK/src/paper/build/tkprefix.pdf"
    log "replay pipeline (torch 2.5.1 venv): $(since "$t2"); $(pdfinfo "$WORK/src/paper/build/tkprefix.pdf" \
        | awk '/^Pages:/ {print $2}') pages"
    log "python step: $(since "$t0") (not part of it: the Dockerfile's peers, flashinfer, flash-attn, upstream Hydragen"
    log "  and ChunkAttention, which need CUDA and a GPU to build or run)"
}

# ----------------------------------------------------------------------------------------------------- kernels
# CUDA 12.6 as the image has it, assembled in $TC from pinned packages (see the header).
TC=$CACHE/cuda-12.6
toolkit() {
    local tc=$TC dl=$CACHE/downloads
    if [[ -x $tc/bin/nvcc && -f $tc/.complete ]]; then return; fi
    rm -rf "$tc" && mkdir -p "$dl" "$tc"/{bin/crt,nvvm/bin,nvvm/libdevice,include,lib64}
    cat > "$dl/cuda126.txt" <<'EOF'
nvidia-cuda-nvcc-cu12==12.6.85 --hash=sha256:d75d9d74599f4d7c0865df19ed21b739e6cb77a6497a3f73d6f61e8038a765e4
nvidia-cuda-runtime-cu12==12.6.77 --hash=sha256:ba3b56a4f896141e25e19ab287cd71e52a6a0f4b29d0d31609f60e3b4d5219b7
nvidia-cuda-cccl-cu12==12.6.77 --hash=sha256:ea80be91ccd49b0785fd744afd470cd0c0175bcf25d4fe65b7d548095b68687a
EOF
    python3 -m pip download -q --no-deps --only-binary :all: --require-hashes -r "$dl/cuda126.txt" -d "$dl"
    if [[ $(sha256sum "$dl/$FRONTEND_DEB" 2>/dev/null | cut -d' ' -f1) != "$FRONTEND_SHA" ]]; then
        # Debian's nvcc front end, through apt with a private state dir (the system's sources stay as they are).
        local apt=$CACHE/apt
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
        echo "deb http://deb.debian.org/debian experimental non-free" > "$apt/sources.list"
        local A=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$apt/lists"
                 -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
        apt-get "${A[@]}" update -qq
        ( cd "$dl" && apt-get "${A[@]}" download -qq "nvidia-cuda-toolkit=12.5.40~12.5.0-2+b1" )
        echo "$FRONTEND_SHA  $dl/$FRONTEND_DEB" | sha256sum -c --quiet -
    fi
    local x=$tc/.unpack; rm -rf "$x"; mkdir -p "$x"
    dpkg-deb -x "$dl/$FRONTEND_DEB" "$x/deb"
    for w in "$dl"/nvidia_cuda_{nvcc,runtime,cccl}_cu12-12.6.*.whl; do python3 -m zipfile -e "$w" "$x/whl"; done
    cp "$x/deb/usr/lib/nvidia-cuda-toolkit/bin/nvcc" "$x/deb/usr/bin/cudafe++" "$x/deb/usr/bin/fatbinary" \
        "$x/deb/usr/bin/bin2c" "$tc/bin/"
    cp "$x/deb/usr/lib/nvidia-cuda-toolkit/bin/crt/"*.stub "$tc/bin/crt/"
    cp "$x/deb/usr/lib/nvidia-cuda-toolkit/bin/cicc" "$tc/nvvm/bin/"
    cp "$x/whl/nvidia/cuda_nvcc/bin/ptxas" "$tc/bin/"
    cp "$x/whl/nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc" "$tc/nvvm/libdevice/"
    cp -r "$x/whl/nvidia/cuda_runtime/include/." "$x/whl/nvidia/cuda_cccl/include/." \
        "$x/whl/nvidia/cuda_nvcc/include/." "$tc/include/"
    find "$tc/include" -name __init__.py -delete
    cp "$x/whl/nvidia/cuda_runtime/lib/libcudart.so.12" "$tc/lib64/"
    ln -s libcudart.so.12 "$tc/lib64/libcudart.so"
    chmod +x "$tc"/bin/* "$tc"/nvvm/bin/*
    cat > "$tc/bin/nvcc.profile" <<'EOF'
TOP              = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
PATH            += $(TOP)/nvvm/bin:$(_HERE_):
INCLUDES        +=  "-I$(TOP)/include" $(_SPACE_)
LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/lib64"
EOF
    rm -rf "$x"
    touch "$tc/.complete"
}

tk_tree_sha() { (cd "$1" && find include prototype -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1); }

# ThunderKittens at the pinned commit, unpatched, in the cache (checked by content hash). Returns 1 if none.
tk_pristine() {
    local dst=$CACHE/ThunderKittens-$TK_COMMIT src
    if [[ -d $dst && $(tk_tree_sha "$dst") == "$TK_TREE_SHA" ]]; then echo "$dst"; return; fi
    for src in "${THUNDERKITTENS_ROOT:-}" "$ROOT/third_party/ThunderKittens"; do
        [[ -n $src && -d $src/include ]] || continue
        rm -rf "$dst" && mkdir -p "$dst"
        if git -C "$src" cat-file -e "$TK_COMMIT" 2>/dev/null; then
            git -C "$src" archive "$TK_COMMIT" include prototype | tar -x -C "$dst"
        else
            cp -r "$src/include" "$src/prototype" "$dst/"
        fi
        if [[ $(tk_tree_sha "$dst") == "$TK_TREE_SHA" ]]; then echo "$dst"; return; fi
        log "$src is not ThunderKittens $TK_COMMIT unpatched (content hash differs)" >&2
        rm -rf "$dst"
    done
    return 1
}

step_kernels() {
    local t0 tc tk venv=$WORK/venv
    t0=$(date +%s)
    if ! tk=$(tk_pristine); then
        log "kernels: NOT RUN: ThunderKittens $TK_COMMIT is not on this machine (set THUNDERKITTENS_ROOT or put a"
        log "  checkout at third_party/ThunderKittens; GitHub is unreachable from CI)"
        return 3
    fi
    [[ -x $venv/bin/python ]] || { log "kernels: needs the python step's venv (torch 2.5.1) first"; return 1; }
    toolkit
    tc=$TC
    log "toolkit $tc: $("$tc/bin/nvcc" --version | tail -2 | head -1) | ptxas: $("$tc/bin/ptxas" --version \
        | tail -2 | head -1) | CUDART_VERSION $(sed -n 's/^#define CUDART_VERSION *//p' "$tc/include/cuda_runtime_api.h")"
    log "toolkit ready: $(since "$t0")"
    # 1. Without the patch, prefix.cu must stop with the known error (else this step could not fail).
    local bad=$WORK/ninja-unpatched good=$WORK/ninja-patched
    rm -rf "$bad" "$good"
    write_ninja "$bad" "$tk" "$tc" >/dev/null
    if "$venv/bin/ninja" -C "$bad" -j2 prefix.cuda.o > "$bad/log.txt" 2>&1; then
        log "kernels: prefix.cu compiled against unpatched TK + CUDA 12.6: the workaround check is void"; return 1
    fi
    local want='identifier "cudaLaunchAttributePreferredClusterDimension" is undefined'
    grep -qF "$want" "$bad/log.txt" || { cat "$bad/log.txt"; log "kernels: unpatched prefix.cu failed otherwise"; return 1; }
    grep -F -m1 "$want" "$bad/log.txt" | sed 's/^/  /'
    log "without the patch: prefix.cu fails as expected ($(since "$t0"))"
    # 2. With the patch: every family's .cu files and the binding.
    local t1 patched=$WORK/ThunderKittens-patched
    t1=$(date +%s)
    rm -rf "$patched" && cp -r "$tk" "$patched"
    ( cd "$patched" && GIT_CEILING_DIRECTORIES=$WORK git apply "$PATCH" )
    grep -q '^#if CUDART_VERSION >= 12080' "$patched/include/common/util.cuh"
    # `tkprefix doctor` on these two real trees and this CUDA: the unpatched one fails naming the patch.
    local d
    for d in "$tk:fail" "$patched:ok"; do
        THUNDERKITTENS_ROOT=${d%:*} CUDA_HOME=$tc PYTHONPATH=$ROOT/src "$venv/bin/python" -c '
import sys
from tkprefix import doctor
c = doctor.check_tk_cuda()
print(f"  doctor tk_cuda [{c.status}] {c.detail[:150]}")
sys.exit(c.status != sys.argv[1] or (c.status == "fail" and doctor.TK_CUDA_PATCH not in c.fix))' "${d##*:}"
    done
    local -a objs
    mapfile -t objs < <(write_ninja "$good" "$patched" "$tc")
    [[ ${#objs[@]} -eq 5 ]] || { log "kernels: expected 5 .cu files, build.py lists ${objs[*]}"; return 1; }
    log "compiling binding.o + ${#objs[@]} kernel objects (ninja -j2); nvcc flags:"
    sed -n 's/^cuda_cflags = /  /p' "$good/build.ninja"
    "$venv/bin/ninja" -C "$good" -j2 binding.o "${objs[@]#*:}"
    log "compiled with CUDA 12.6 (patched TK): $(since "$t1")"
    # 3. The objects + the CUDA runtime they call, for TKPREFIX_PREBUILT_OBJECTS.
    rm -rf "$OUT" && mkdir -p "$OUT"
    local o fam obj
    for o in "${objs[@]}"; do
        fam=${o%%:*} obj=${o#*:}
        mkdir -p "$OUT/$fam" && cp "$good/$obj" "$OUT/$fam/${obj%.cuda.o}.o"
    done
    cp "$tc/lib64/libcudart.so.12" "$OUT/"
    {
        echo "# launcher objects compiled by scripts/ci_image_stack.sh with the Docker image's CUDA 12.6 toolchain"
        echo "cuda_front_end = $("$tc/bin/nvcc" --version | tail -2 | head -1)"
        echo "ptxas = $("$tc/bin/ptxas" --version | tail -2 | head -1)"
        echo "cudart_version = $(sed -n 's/^#define CUDART_VERSION *//p' "$tc/include/cuda_runtime_api.h")"
        echo "torch = $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
        echo "tk_commit = $TK_COMMIT"
        echo "tk_patch_sha256 = $(sha256sum < "$PATCH" | cut -d' ' -f1)"
        echo "cuda_cflags = $(sed -n 's/^cuda_cflags = //p' "$good/build.ninja")"
        PYTHONPATH=$ROOT/src "$venv/bin/python" -c 'from tkprefix import build
for f in build.available_families():
    print(f"kernel_hash.{f} = {build.kernel_hash(f)}")'
    } > "$OUT/MANIFEST"
    (cd "$OUT" && find . -type f | sort | xargs ls -l | awk '{print "  " $5, $9}')
    log "kernels step: $(since "$t0"); objects in ${OUT#"$ROOT"/} ($(du -sh "$OUT" | cut -f1))"
}

# build.ninja of the extension as torch 2.5.1's cpp_extension writes it, from build.extension_args (all families).
# Prints "family:object" for each kernel object target.
write_ninja() {
    mkdir -p "$1"
    THUNDERKITTENS_ROOT=$2 CUDA_HOME=$3 TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$ROOT/src \
        "$WORK/venv/bin/python" - "$1" <<'EOF'
import sys
from pathlib import Path

from torch.utils import cpp_extension as ce

from tkprefix import build

fams = tuple(build.available_families())
kw = build.extension_args(fams)
ce._write_ninja_file_to_build_library(
    path=str(Path(sys.argv[1]) / "build.ninja"), name=kw["name"], sources=kw["sources"],
    extra_cflags=kw["extra_cflags"], extra_cuda_cflags=kw["extra_cuda_cflags"], extra_ldflags=kw["extra_ldflags"],
    extra_include_paths=kw["extra_include_paths"], with_cuda=True, is_standalone=False)
for f in fams:
    for src in build.family_sources(f):
        print(f"{f}:{src.stem}.cuda.o")
EOF
}

case $WHAT in
    python) step_python ;;
    kernels) step_kernels ;;
    all) step_python; step_kernels ;;
    *) echo "usage: $0 [python|kernels|all]" >&2; exit 2 ;;
esac
