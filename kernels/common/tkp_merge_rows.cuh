// kernels/common/tkp_merge_rows.cuh -- the LSE merge of partial rows listed by a CSR, shared by the chunk_attn and
// tree families (each instantiates it in its own translation unit).
//
//   part_o (n_partial_rows, hq, D) of P (float32 for chunk_attn; the output's dtype T for tree attention, half the
//   bytes; its rows 16-byte aligned: the wrappers allocate it), part_lse (n_partial_rows, hq) float32 natural log;
//   off (n_out + 1) CSR into rows: output row i merges partial rows rows[off[i] .. off[i+1]).
//   o (n_out, hq, D) of T; lse_out (n_out, hq) float32 or nullptr. An output row with no partials gets o = 0,
//   lse = -inf. Launch: grid (n_out, ceil(hq * W / 4)), 128 threads: W warps per (output row, q-head), W = 1, 2 or 4
//   by the mean partials per output row (n_listed / n_out): few partials, one warp each; many (ChunkAttention's 64
//   chunk-first pieces a sequence at B16 H16), W warps share them, as one warp's loads in flight bound its merge.
//   launch_merge_rows<PARTIALS_IN_T>: that launch for bf16 or fp16 and d_head 64 or 128 (checked by the caller), with
//   P = T (true) or float32 (false); returns the launch's cudaError_t, which each family turns into its own message.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <type_traits>

#include "tkp_common.cuh"

namespace tkp {
namespace {  // internal linkage: each family's translation unit has its own copy (no clash of kernel stubs at link)

template<typename T, typename P, int D, int W>
__global__ __launch_bounds__(128)
void merge_rows_kernel(const P *__restrict__ part_o, const float *__restrict__ part_lse,
                       const int32_t *__restrict__ off, const int32_t *__restrict__ rows,
                       T *__restrict__ o, float *__restrict__ lse_out, int hq) {
    constexpr int PER_LANE = D / 32, HEADS = 4 / W;  // q-heads per block
    struct alignas(PER_LANE * sizeof(P)) lane_vec { P v[PER_LANE]; };  // a lane's slice of a partial row
    constexpr unsigned ALL = 0xffffffffu;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int part = warp % W;  // this warp takes the partials part*32.., stepping 32*W, of its (row, q-head)
    const int seq = blockIdx.x, qh = blockIdx.y * HEADS + warp / W;
    if (W == 1 && qh >= hq) return;  // the whole warp: the shuffles below see all 32 lanes
    const bool live = qh < hq;       // W > 1: every warp reaches the block's barriers
    const int b = off[seq], e = live ? off[seq + 1] : b;
    __shared__ float s_m[4], s_sum[4], s_acc[W > 1 ? 4 : 1][D];
    // Latency, not bandwidth, bounds a merge of few rows: the lanes load 32 partials' row index and lse at once (one
    // round trip per 32 partials, not two per partial), and the o loads of several partials are in flight together.
    float m = -INFINITY;
    for (int p0 = b + part * 32; p0 < e; p0 += 32 * W) {
        if (p0 + lane < e) m = fmaxf(m, part_lse[(size_t)rows[p0 + lane] * hq + qh]);
    }
    #pragma unroll
    for (int s = 16; s > 0; s /= 2) m = fmaxf(m, __shfl_xor_sync(ALL, m, s));
    if constexpr (W > 1) {  // the (row, q-head)'s max over its W warps
        if (lane == 0) s_m[warp] = m;
        __syncthreads();
        #pragma unroll
        for (int w = 0; w < W; w++) m = fmaxf(m, s_m[warp - part + w]);
    }
    float acc[PER_LANE];
    #pragma unroll
    for (int k = 0; k < PER_LANE; k++) acc[k] = 0.f;
    float sum = 0.f;
    if (m != -INFINITY) {
        for (int p0 = b + part * 32; p0 < e; p0 += 32 * W) {
            const int n = min(32, e - p0);
            long long my_row = 0;  // this lane's partial (p0 + lane): its row offset and weight
            float my_w = 0.f;
            if (lane < n) {
                my_row = (long long)rows[p0 + lane] * hq + qh;
                my_w = __expf(part_lse[my_row] - m);
            }
            sum += my_w;
            #pragma unroll 8
            for (int j = 0; j < n; j++) {
                const float w = __shfl_sync(ALL, my_w, j);
                const long long r = __shfl_sync(ALL, my_row, j);
                const lane_vec x = *reinterpret_cast<const lane_vec *>(part_o + r * D + lane * PER_LANE);
                #pragma unroll
                for (int k = 0; k < PER_LANE; k++) acc[k] += w * to_float(x.v[k]);
            }
        }
        #pragma unroll
        for (int s = 16; s > 0; s /= 2) sum += __shfl_xor_sync(ALL, sum, s);
    }
    if constexpr (W > 1) {  // the first of the W warps adds the others' sums (all at the common max m)
        if (part != 0) {
            #pragma unroll
            for (int k = 0; k < PER_LANE; k++) s_acc[warp][lane * PER_LANE + k] = acc[k];
            if (lane == 0) s_sum[warp] = sum;
        }
        __syncthreads();
        if (part != 0 || !live) return;
        for (int w = 1; w < W; w++) {
            #pragma unroll
            for (int k = 0; k < PER_LANE; k++) acc[k] += s_acc[warp + w][lane * PER_LANE + k];
            sum += s_sum[warp + w];
        }
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    T *dst = o + ((size_t)seq * hq + qh) * D + lane * PER_LANE;
    #pragma unroll
    for (int k = 0; k < PER_LANE; k++) dst[k] = from_float<T>(acc[k] * inv);
    if (lse_out != nullptr && lane == 0) lse_out[(size_t)seq * hq + qh] = sum > 0.f ? m + logf(sum) : -INFINITY;
}

template<typename T, typename P, int D>
inline void launch_merge_rows_d(int w, int n_out, int hq, const void *part_o, const float *part_lse,
                                const int32_t *off, const int32_t *rows, void *o, float *lse_out, cudaStream_t stream) {
    const dim3 grid(n_out, (hq * w + 3) / 4);
    const P *po = (const P *)part_o;
    T *out = (T *)o;
    if (w == 4) merge_rows_kernel<T, P, D, 4><<<grid, 128, 0, stream>>>(po, part_lse, off, rows, out, lse_out, hq);
    else if (w == 2) merge_rows_kernel<T, P, D, 2><<<grid, 128, 0, stream>>>(po, part_lse, off, rows, out, lse_out, hq);
    else merge_rows_kernel<T, P, D, 1><<<grid, 128, 0, stream>>>(po, part_lse, off, rows, out, lse_out, hq);
}

// n_listed: the CSR's entries (partials merged in all), for the warps per (row, q-head)
template<bool PARTIALS_IN_T>
inline cudaError_t launch_merge_rows(bool bf16, int d_head, int n_out, int hq, int n_listed, const void *part_o,
                                     const float *part_lse, const int32_t *off, const int32_t *rows, void *o,
                                     float *lse_out, cudaStream_t stream) {
    using BP = std::conditional_t<PARTIALS_IN_T, __nv_bfloat16, float>;  // partial type with bf16 outputs
    using HP = std::conditional_t<PARTIALS_IN_T, __half, float>;          // and with fp16 outputs
    const long long mean = n_out > 0 ? (long long)n_listed / n_out : 0;
    const int w = mean >= 32 ? 4 : mean >= 16 ? 2 : 1;
    #define TKP_MERGE(T, P, D) \
        launch_merge_rows_d<T, P, D>(w, n_out, hq, part_o, part_lse, off, rows, o, lse_out, stream)
    if (d_head == 128) {
        if (bf16) TKP_MERGE(__nv_bfloat16, BP, 128);
        else TKP_MERGE(__half, HP, 128);
    } else {
        if (bf16) TKP_MERGE(__nv_bfloat16, BP, 64);
        else TKP_MERGE(__half, HP, 64);
    }
    #undef TKP_MERGE
    return cudaGetLastError();
}

}  // namespace
}  // namespace tkp
