// kernels/common/tkp_softmax.cuh -- the online-softmax step shared by the TK attention kernels (prefix, chunk).
#pragma once
#include "kittens.cuh"

namespace tkp {

// One FlashAttention-style online-softmax step over a register tile of scores, in base 2.
//   att        in: raw scores q.k (masked keys already -inf); out: 2^(att*scale - m_new*scale), ready for P V
//   max_vec    running row max of the raw scores (updated to m_new)
//   norm_vec   running row sum (rescaled to m_new, then this tile's sum added)
//   rescale    in: m_old*scale (the caller computes it while its Q K^T wgmma is in flight);
//              out: 2^((m_old - m_new)*scale), the factor by which the caller rescales its output accumulator
//   max_scaled out: m_new*scale (the caller's final LSE is (max_scaled + log2(norm)) in base 2)
template<typename ATT, typename VEC>
__device__ __forceinline__ void online_softmax_step(ATT &att, VEC &max_vec, VEC &norm_vec, VEC &rescale,
                                                    VEC &max_scaled, float scale) {
    kittens::warp::row_max(max_vec, att, max_vec);
    kittens::warp::mul(att, att, scale);
    kittens::warp::mul(max_scaled, max_vec, scale);
    kittens::warp::sub_row(att, att, max_scaled);
    kittens::warp::exp2(att, att);
    kittens::warp::sub(rescale, rescale, max_scaled);
    kittens::warp::exp2(rescale, rescale);
    kittens::warp::mul(norm_vec, norm_vec, rescale);
    kittens::warp::row_sum(norm_vec, att, norm_vec);
}

}  // namespace tkp
