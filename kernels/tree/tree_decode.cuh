// Tree attention, decode items: the TreePlan items of at most a few stacked rows (leaves, nodes over a few leaves;
// CostModel.decode_rows), where a 64-row wgmma tile would be mostly padding and the work is a memory-bound read of
// the item's KV. Included by tree.cu; same work-list contract (launch_tree.h), same fp32 (o, lse) partials.
//
// One warp per unit (item, kv-head); many small blocks, so many warps per SM keep loads in flight (the MMA kernel's
// one block per SM cannot hide a gather's latency on thousands of tiny units). A token's D-vector is spread over
// LPT = D / 8 lanes (16-byte loads), so a warp reads TPS = 32 / LPT tokens per step, UNROLL steps at a time; each
// lane group of LPT lanes keeps its own online softmax per stacked row, and the groups merge by shuffles at the end.
// ROWS (1 or 2: the launcher picks 1 when every decode item has one stacked row, for deeper unrolling) stacked rows
// are held in registers at once; an item with more loops over row groups (re-reading its KV).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "../common/tkp_common.cuh"

namespace tkprefix_tree {

template<typename T, int D, int ROWS_> struct decode_layout {
    static_assert(D == 64 || D == 128, "d_head must be 64 or 128");
    static_assert(ROWS_ == 1 || ROWS_ == 2, "1 or 2 stacked rows per pass");
    static constexpr int ROWS = ROWS_;        // stacked rows held in registers at once
    static constexpr int LPT = D / 8;         // lanes per token (8 elements = 16 bytes each)
    static constexpr int TPS = 32 / LPT;      // tokens per warp step
    static constexpr int UNROLL = 8 / ROWS;   // steps whose loads are issued together (the registers one row frees)
    static constexpr int WARPS = 4;           // warps (units) per block
    static constexpr int THREADS = WARPS * 32;
    static constexpr int MIN_BLOCKS = 4;      // 16 warps per SM: <= 128 registers (no spills)
};


template<typename T> __device__ static inline float elem(const uint4 &raw, int i) {
    return tkp::to_float(reinterpret_cast<const T *>(&raw)[i]);  // torch builds with __CUDA_NO_*_CONVERSIONS__
}

template<typename T> __device__ static inline void load8(const T *p, float (&f)[8]) {
    const uint4 raw = *reinterpret_cast<const uint4 *>(p);
    #pragma unroll
    for (int i = 0; i < 8; i++) f[i] = elem<T>(raw, i);
}

template<typename T, int D, int ROWS>
__global__ __launch_bounds__(decode_layout<T, D, ROWS>::THREADS, decode_layout<T, D, ROWS>::MIN_BLOCKS)
void tree_decode_kernel(const __grid_constant__ typename tree_layout<T, D, 1>::globals g, int item0) {
    using L = decode_layout<T, D, ROWS>;
    constexpr int R = L::ROWS, LPT = L::LPT, TPS = L::TPS, U = L::UNROLL;
    constexpr float SCALE = tkp::softmax_scale_log2<D>();
    const int lane = threadIdx.x % 32;
    const long long unit = (long long)blockIdx.x * L::WARPS + threadIdx.x / 32;
    if (unit >= (long long)(g.n_items - item0) * g.hkv) return;  // whole warps leave: no block barrier below
    const int item = item0 + (int)(unit / g.hkv), h = (int)(unit % g.hkv);
    const int row0 = g.item_row_start[item], n_stacked = (g.item_row_end[item] - row0) * g.group;
    const int s_begin = g.item_seg_offset[item], s_end = g.item_seg_offset[item + 1];
    const int part0 = g.item_partial_offset[item];
    const int sub = lane / LPT, c = (lane % LPT) * 8;  // token slot in a step, first column

    for (int rg = 0; rg < n_stacked; rg += R) {
        float q[R][8], acc[R][8], m[R], l[R];
        #pragma unroll
        for (int r = 0; r < R; r++) {
            m[r] = -INFINITY;
            l[r] = 0.f;
            #pragma unroll
            for (int i = 0; i < 8; i++) acc[r][i] = 0.f, q[r][i] = 0.f;
            const int e = rg + r;
            if (e < n_stacked) {
                load8(g.q + ((size_t)(row0 + e / g.group) * g.hq + h * g.group + e % g.group) * D + c, q[r]);
                #pragma unroll
                for (int i = 0; i < 8; i++) q[r][i] *= SCALE;  // scores in log2 units
            }
        }
        for (int s = s_begin; s < s_end; s++) {
            const int page0 = g.seg_page[s], slot0 = g.seg_slot[s], len = g.seg_len[s];
            for (int t0 = 0; t0 < len; t0 += TPS * U) {
                // Every load of the U steps is issued before any is used, and none is conditional: a step past the
                // segment's end re-reads its last token (finite: the segment owns it) and gets score -inf. So one
                // step costs two round trips (page table, then K/V), not 2 U.
                int page[U], slot[U];
                bool ok[U];
                #pragma unroll
                for (int j = 0; j < U; j++) {
                    const int t = t0 + j * TPS + sub;
                    ok[j] = t < len;
                    const int pos = slot0 + min(t, len - 1);
                    page[j] = g.page_table[page0 + pos / g.page_size];
                    slot[j] = pos % g.page_size;
                }
                uint4 kr[U], vr[U];  // raw 16-byte vectors (converted at use: fewer registers, more warps per SM)
                #pragma unroll
                for (int j = 0; j < U; j++) {
                    const long long row = ((long long)page[j] * g.hkv + h) * g.page_size + slot[j];
                    kr[j] = *reinterpret_cast<const uint4 *>(g.k + row * D + c);
                    vr[j] = *reinterpret_cast<const uint4 *>(g.v + row * D + c);
                }
                #pragma unroll
                for (int r = 0; r < R; r++) {
                    if (rg + r >= n_stacked) break;
                    float sc[U], mx = m[r];
                    #pragma unroll
                    for (int j = 0; j < U; j++) {
                        float d = 0.f;
                        #pragma unroll
                        for (int i = 0; i < 8; i++) d += q[r][i] * elem<T>(kr[j], i);
                        #pragma unroll
                        for (int off = LPT / 2; off > 0; off /= 2) d += __shfl_xor_sync(0xffffffffu, d, off);
                        sc[j] = ok[j] ? d : -INFINITY;
                        mx = fmaxf(mx, sc[j]);
                    }
                    if (mx == -INFINITY) continue;  // this lane group has seen no token yet
                    const float corr = exp2f(m[r] - mx);
                    l[r] *= corr;
                    #pragma unroll
                    for (int i = 0; i < 8; i++) acc[r][i] *= corr;
                    #pragma unroll
                    for (int j = 0; j < U; j++) {
                        const float p = exp2f(sc[j] - mx);  // 0 for a missing token
                        l[r] += p;
                        #pragma unroll
                        for (int i = 0; i < 8; i++) acc[r][i] += p * elem<T>(vr[j], i);
                    }
                    m[r] = mx;
                }
            }
        }
        // merge the TPS lane groups (lanes c apart by LPT, 2 LPT, ...), then lanes of group 0 write
        #pragma unroll
        for (int r = 0; r < R; r++) {
            #pragma unroll
            for (int off = LPT; off < 32; off *= 2) {
                const float m_o = __shfl_xor_sync(0xffffffffu, m[r], off);
                const float l_o = __shfl_xor_sync(0xffffffffu, l[r], off);
                const float mx = fmaxf(m[r], m_o);
                const float a = mx == -INFINITY ? 0.f : exp2f(m[r] - mx);
                const float b = mx == -INFINITY ? 0.f : exp2f(m_o - mx);
                l[r] = l[r] * a + l_o * b;
                #pragma unroll
                for (int i = 0; i < 8; i++) {
                    const float o_o = __shfl_xor_sync(0xffffffffu, acc[r][i], off);
                    acc[r][i] = acc[r][i] * a + o_o * b;
                }
                m[r] = mx;
            }
            const int e = rg + r;
            if (sub != 0 || e >= n_stacked) continue;
            const int prow = part0 + e / g.group, qh = h * g.group + e % g.group;
            float *dst = g.part_o + ((size_t)prow * g.hq + qh) * D + c;
            const float inv = 1.f / l[r];  // l >= 1: the row's max score contributes exp2(0)
            *reinterpret_cast<float4 *>(dst) = make_float4(acc[r][0] * inv, acc[r][1] * inv, acc[r][2] * inv, acc[r][3] * inv);
            *reinterpret_cast<float4 *>(dst + 4) = make_float4(acc[r][4] * inv, acc[r][5] * inv, acc[r][6] * inv, acc[r][7] * inv);
            if (lane == 0) g.part_lse[(size_t)prow * g.hq + qh] = (m[r] + log2f(l[r])) * 0.69314718055994530942f;
        }
    }
}

}  // namespace tkprefix_tree
