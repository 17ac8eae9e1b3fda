# Sourced by the device calls of sessions 28-29 (s28_verify/call.sh, s28_prefix_plan/call.sh, s29_tree_ncu/call.sh and,
# on branch s28-prefix-fixup, s28_prefix_fixup/call.sh; before them sessions 26-27's call_ab.sh, in git history), run
# from the repository root of the branch's checkout on the GPU machine: the deadline helpers, third_party, the
# environment, and
# kenv FAMILY VARIANT (the build of one kernel family from this tree's kernels/, VARIANT "this", or $V/v/VARIANT,
# with $V/r_VARIANT/src as its Python package where that exists),
# kbuild (those builds, in parallel).
V=${V:-.dev/s27}; T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DL - $(el) )); }
[ -d third_party/ThunderKittens ] || tar xzf $V/third_party.tgz
kdir() { [ "$1" = this ] && echo "$PWD/kernels" || echo "$PWD/$V/v/$1"; }
# a variant's own Python package where $V/r_VARIANT holds its src/ and config/ (head's binding lacks later keyword
# arguments)
kpy() { [ -d $V/r_$1/src ] && echo "$PWD/$V/r_$1/src" || echo "$PWD/src"; }
kenv() {
  echo "TKPREFIX_FAMILIES=$1 TKPREFIX_KERNELS_DIR=$(kdir $2) TKPREFIX_BUILD_DIR=/tmp/b_$1_$2 PYTHONPATH=$(kpy $2)"
}
# kbuild FAMILY JOBS TIMEOUT VARIANT...: build the family for each variant at once (MAX_JOBS JOBS each), then wait
kbuild() {
  local fam=$1 jobs=$2 limit=$3 v; shift 3
  for v in "$@"; do
    ( env $(kenv $fam $v) MAX_JOBS=$jobs timeout $limit python3 -c "import tkprefix.build as b; b.load_extension()" \
        > /tmp/build_${fam}_$v.log 2>&1; echo "build $fam $v rc=$? at $(el) s"; tail -2 /tmp/build_${fam}_$v.log ) &
  done
  wait
}
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
export PYTHONPATH=$PWD/src
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
