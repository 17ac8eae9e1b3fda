# Sourced by session 26's prepared calls (s26_decode_one_tile/call_ab.sh, s26_tree_tile/call_ab.sh), run from the
# repository root of the branch's checkout on the GPU machine: the deadline helpers, third_party, the environment, and
# kenv FAMILY VARIANT (the build of one kernel family from this tree's kernels/, VARIANT "this", or $V/v/VARIANT).
V=${V:-.dev/s27}; T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DL - $(el) )); }
[ -d third_party/ThunderKittens ] || tar xzf $V/third_party.tgz
kdir() { [ "$1" = this ] && echo "$PWD/kernels" || echo "$PWD/$V/v/$1"; }
kenv() { echo "TKPREFIX_FAMILIES=$1 TKPREFIX_KERNELS_DIR=$(kdir $2) TKPREFIX_BUILD_DIR=/tmp/b_$1_$2"; }
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a
export PYTHONPATH=$PWD/src
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
