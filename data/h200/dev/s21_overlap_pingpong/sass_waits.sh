#!/usr/bin/env bash
# Where ptxas puts the overlapped prefix loop's wgmma waits: compiles DIR/hydragen/prefix.cu (a kernels folder, e.g.
# one that variants2.py makes) for sm_90a and prints the bf16 D-128 overlapped kernel's HGMMA, WARPGROUP.DEPBAR,
# FMNMX (row max) and MUFU.EX2 (exp2) runs in order. Needs THUNDERKITTENS_ROOT and a cuobjdump (CUDA's, or the
# nvidia-cuda-cuobjdump wheel's: CUOBJDUMP=<path>).   Usage: bash sass_waits.sh DIR
set -euo pipefail
dir=$1; obj=$(mktemp --suffix .o)
nvcc -gencode=arch=compute_90a,code=sm_90a -I "$THUNDERKITTENS_ROOT/include" -I "$THUNDERKITTENS_ROOT/prototype" \
    -I "$dir" -DKITTENS_HOPPER -std=c++20 --expt-relaxed-constexpr --expt-extended-lambda -O3 --use_fast_math \
    -c "$dir/hydragen/prefix.cu" -o "$obj"
"${CUOBJDUMP:-cuobjdump}" -sass -fun _ZN3tkp6prefix13prefix_kernelI13__nv_bfloat16Li128ELi2ELb1ELi128EEEvNS0_7globalsE \
    "$obj" | grep -o "HGMMA[^ ]*\|WARPGROUP.DEPBAR.LE gsb0, 0x[01]\|FMNMX\|MUFU.EX2" | uniq -c
rm -f "$obj"
