// kernels/common/tkp_merge_rows.cuh -- the LSE merge of partial rows listed by a CSR, shared by the chunk_attn and
// tree families (each instantiates it in its own translation unit).
//
//   part_o (n_partial_rows, hq, D) of P (float32 for chunk_attn; the output's dtype T for tree attention, half the
//   bytes; its rows 16-byte aligned: the wrappers allocate it), part_lse (n_partial_rows, hq) float32 natural log;
//   off (n_out + 1) CSR into rows: output row i merges partial rows rows[off[i] .. off[i+1]).
//   o (n_out, hq, D) of T; lse_out (n_out, hq) float32 or nullptr. An output row with no partials gets o = 0,
//   lse = -inf. Launch: grid (n_out, ceil(hq / 4)), 128 threads: one warp per (output row, q-head).
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

template<typename T, typename P, int D>
__global__ __launch_bounds__(128)
void merge_rows_kernel(const P *__restrict__ part_o, const float *__restrict__ part_lse,
                       const int32_t *__restrict__ off, const int32_t *__restrict__ rows,
                       T *__restrict__ o, float *__restrict__ lse_out, int hq) {
    constexpr int PER_LANE = D / 32;
    struct alignas(PER_LANE * sizeof(P)) lane_vec { P v[PER_LANE]; };  // a lane's slice of a partial row
    constexpr unsigned ALL = 0xffffffffu;
    const int seq = blockIdx.x, qh = blockIdx.y * 4 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (qh >= hq) return;  // the whole warp: the shuffles below see all 32 lanes
    const int b = off[seq], e = off[seq + 1];
    // Latency, not bandwidth, bounds a merge of few rows: the lanes load 32 partials' row index and lse at once (one
    // round trip per 32 partials, not two per partial), and the o loads of several partials are in flight together.
    float m = -INFINITY;
    for (int p0 = b; p0 < e; p0 += 32) {
        if (p0 + lane < e) m = fmaxf(m, part_lse[(size_t)rows[p0 + lane] * hq + qh]);
    }
    #pragma unroll
    for (int s = 16; s > 0; s /= 2) m = fmaxf(m, __shfl_xor_sync(ALL, m, s));
    float acc[PER_LANE];
    #pragma unroll
    for (int k = 0; k < PER_LANE; k++) acc[k] = 0.f;
    float sum = 0.f;
    if (m != -INFINITY) {
        for (int p0 = b; p0 < e; p0 += 32) {
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
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    T *dst = o + ((size_t)seq * hq + qh) * D + lane * PER_LANE;
    #pragma unroll
    for (int k = 0; k < PER_LANE; k++) dst[k] = from_float<T>(acc[k] * inv);
    if (lse_out != nullptr && lane == 0) lse_out[(size_t)seq * hq + qh] = sum > 0.f ? m + logf(sum) : -INFINITY;
}

template<bool PARTIALS_IN_T>
inline cudaError_t launch_merge_rows(bool bf16, int d_head, int n_out, int hq, const void *part_o,
                                     const float *part_lse, const int32_t *off, const int32_t *rows, void *o,
                                     float *lse_out, cudaStream_t stream) {
    using BP = std::conditional_t<PARTIALS_IN_T, __nv_bfloat16, float>;  // partial type with bf16 outputs
    using HP = std::conditional_t<PARTIALS_IN_T, __half, float>;          // and with fp16 outputs
    const dim3 grid(n_out, (hq + 3) / 4);
    if (d_head == 128) {
        if (bf16) merge_rows_kernel<__nv_bfloat16, BP, 128><<<grid, 128, 0, stream>>>((const BP *)part_o, part_lse, off, rows, (__nv_bfloat16 *)o, lse_out, hq);
        else merge_rows_kernel<__half, HP, 128><<<grid, 128, 0, stream>>>((const HP *)part_o, part_lse, off, rows, (__half *)o, lse_out, hq);
    } else {
        if (bf16) merge_rows_kernel<__nv_bfloat16, BP, 64><<<grid, 128, 0, stream>>>((const BP *)part_o, part_lse, off, rows, (__nv_bfloat16 *)o, lse_out, hq);
        else merge_rows_kernel<__half, HP, 64><<<grid, 128, 0, stream>>>((const HP *)part_o, part_lse, off, rows, (__half *)o, lse_out, hq);
    }
    return cudaGetLastError();
}

}  // namespace
}  // namespace tkp
