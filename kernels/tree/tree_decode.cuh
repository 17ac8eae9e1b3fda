// Tree attention, decode items: the TreePlan items of at most a few stacked rows (leaves, nodes over a few leaves;
// CostModel.is_decode), where a 64-row wgmma tile would be mostly padding and the work is a memory-bound read of
// the item's KV. Included by tree.cu; same work-list contract (launch_tree.h), same (o, lse) partials.
//
// One warp per unit (item, kv-head); many small blocks, so many warps per SM keep loads in flight (the MMA kernel's
// one block per SM cannot hide a gather's latency on thousands of tiny units). A token's D-vector is spread over
// LPT = D / 8 lanes (16-byte loads), so a warp reads TPS = 32 / LPT tokens per step, UNROLL steps at a time; each
// lane group of LPT lanes keeps its own online softmax per stacked row, and the groups merge by shuffles at the end.
// ROWS (1 or 2: the launcher picks 1 when every decode item has one stacked row, for deeper unrolling) stacked rows
// are held in registers at once; an item with more loops over row groups (re-reading its KV), except a short one:
// an item of at most HELD_TOKENS tokens over more than ROWS stacked rows (a short node over many leaves) loads its KV
// into registers once and loops over its rows one at a time, each row's q loaded while the previous one computes.
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
    static constexpr int HELD_STEPS = 8;      // steps of a short item's KV held in registers
    static constexpr int HELD_TOKENS = TPS * HELD_STEPS;  // 16 tokens at D = 128, 32 at D = 64
};

template<typename T> __device__ static inline float elem(const uint4 &raw, int i) {
    return tkp::to_float(reinterpret_cast<const T *>(&raw)[i]);  // torch builds with __CUDA_NO_*_CONVERSIONS__
}

template<typename T> __device__ static inline void load8(const T *p, float (&f)[8]) {
    const uint4 raw = *reinterpret_cast<const uint4 *>(p);
    #pragma unroll
    for (int i = 0; i < 8; i++) f[i] = elem<T>(raw, i);
}

// Each of the TPS lane groups (lanes LPT, 2 LPT, ... apart) holds an online-softmax state of one stacked row (m in
// log2 units, l, acc over its tokens); merge them by shuffles, then group 0 (writer) writes the partial row
// o = acc / l at dst_o (its 8 columns, in T) and lane 0 the row's lse (natural log, fp32) at *dst_lse.
template<int LPT, typename T>
__device__ static inline void merge_groups_and_write(float m, float l, float (&acc)[8], T *dst_o, float *dst_lse,
                                                     bool writer, int lane) {
    #pragma unroll
    for (int off = LPT; off < 32; off *= 2) {
        const float m_o = __shfl_xor_sync(0xffffffffu, m, off);
        const float l_o = __shfl_xor_sync(0xffffffffu, l, off);
        const float mx = fmaxf(m, m_o);
        const float a = mx == -INFINITY ? 0.f : exp2f(m - mx);
        const float b = mx == -INFINITY ? 0.f : exp2f(m_o - mx);
        l = l * a + l_o * b;
        #pragma unroll
        for (int i = 0; i < 8; i++) {
            const float o_o = __shfl_xor_sync(0xffffffffu, acc[i], off);
            acc[i] = acc[i] * a + o_o * b;
        }
        m = mx;
    }
    if (!writer) return;
    const float inv = 1.f / l;  // l >= 1: the row's max score contributes exp2(0)
    uint4 packed;  // 8 values of T: one 16-byte store
    #pragma unroll
    for (int i = 0; i < 4; i++) store_pair(reinterpret_cast<T *>(&packed) + 2 * i, make_float2(acc[2 * i] * inv, acc[2 * i + 1] * inv));
    *reinterpret_cast<uint4 *>(dst_o) = packed;
    if (lane == 0) *dst_lse = (m + log2f(l)) * 0.69314718055994530942f;
}

// A short item (n_tok <= HELD_TOKENS) over many stacked rows: its KV is loaded once, step j of lane group `sub` holding
// token j * TPS + sub (a token past n_tok re-reads the last one and gets score -inf), then each stacked row e is one
// online-softmax pass over the held steps; row e + 1's q is loaded before row e computes.
template<typename T, int D, typename L>
__device__ static inline void decode_rows_over_held_kv(const typename tree_layout<T, D, 1>::globals &g, int h,
                                                       int row0, int n_stacked, int part0, int s_begin, int n_tok,
                                                       int lane, int sub, int c) {
    constexpr int LPT = L::LPT, TPS = L::TPS, U = L::HELD_STEPS;
    constexpr float SCALE = tkp::softmax_scale_log2<D>();
    uint4 kr[U], vr[U];
    #pragma unroll
    for (int j = 0; j < U; j++) {
        int s = s_begin, off = min(j * TPS + sub, n_tok - 1);  // the item's segments hold its n_tok tokens in order
        for (int len = g.seg_len[s]; off >= len; len = g.seg_len[s]) {
            off -= len;
            s++;
        }
        const int pos = g.seg_slot[s] + off;
        const long long page = g.page_table[g.seg_page[s] + pos / g.page_size];
        const long long row = (page * g.hkv + h) * g.page_size + pos % g.page_size;
        kr[j] = *reinterpret_cast<const uint4 *>(g.k + row * D + c);
        vr[j] = *reinterpret_cast<const uint4 *>(g.v + row * D + c);
    }
    auto q_of = [&](int e) {  // stacked row e: leaf row0 + e / group, q-head h * group + e % group
        return *reinterpret_cast<const uint4 *>(g.q + ((size_t)(row0 + e / g.group) * g.hq + h * g.group + e % g.group) * D + c);
    };
    uint4 q_next = q_of(0);
    for (int e = 0; e < n_stacked; e++) {
        const uint4 q = q_next;
        if (e + 1 < n_stacked) q_next = q_of(e + 1);
        float m = -INFINITY, l = 0.f, acc[8];  // online softmax over the held steps (scores in log2 units)
        #pragma unroll
        for (int i = 0; i < 8; i++) acc[i] = 0.f;
        #pragma unroll
        for (int j = 0; j < U; j++) {
            float d = 0.f;
            #pragma unroll
            for (int i = 0; i < 8; i++) d += elem<T>(q, i) * elem<T>(kr[j], i);
            #pragma unroll
            for (int off = LPT / 2; off > 0; off /= 2) d += __shfl_xor_sync(0xffffffffu, d, off);
            if (j * TPS + sub >= n_tok) continue;  // a re-read token: no score (lane-group uniform)
            const float sc = d * SCALE, mx = fmaxf(m, sc), corr = exp2f(m - mx), p = exp2f(sc - mx);
            l = l * corr + p;
            #pragma unroll
            for (int i = 0; i < 8; i++) acc[i] = acc[i] * corr + p * elem<T>(vr[j], i);
            m = mx;
        }
        const size_t prow_qh = (size_t)(part0 + e / g.group) * g.hq + h * g.group + e % g.group;
        merge_groups_and_write<LPT>(m, l, acc, g.part_o + prow_qh * D + c, g.part_lse + prow_qh, sub == 0, lane);
    }
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
    if constexpr (R > 1) if (n_stacked > R) {  // (with R = 1 every item has one stacked row)
        int n_tok = 0;
        for (int s = s_begin; s < s_end && n_tok <= L::HELD_TOKENS; s++) n_tok += g.seg_len[s];
        if (n_tok <= L::HELD_TOKENS) {
            decode_rows_over_held_kv<T, D, L>(g, h, row0, n_stacked, part0, s_begin, n_tok, lane, sub, c);
            return;
        }
    }

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
                    // This lane group has seen no token yet (mx = -inf): at ROWS 1 no branch, since one let the
                    // compiler sink the V loads behind the scores (a third round trip a round); the update is then a
                    // no-op by select (corr 1, p 0; exp2f(-inf - -inf) would be NaN). ROWS 2 keeps the branch (the
                    // select spills there, and its V loads are not sunk).
                    if constexpr (R > 1) if (mx == -INFINITY) continue;
                    const bool none = R == 1 && mx == -INFINITY;
                    const float corr = none ? 1.f : exp2f(m[r] - mx), base = none ? 0.f : mx;
                    l[r] *= corr;
                    #pragma unroll
                    for (int i = 0; i < 8; i++) acc[r][i] *= corr;
                    #pragma unroll
                    for (int j = 0; j < U; j++) {
                        const float p = exp2f(sc[j] - base);  // 0 for a missing token
                        l[r] += p;
                        #pragma unroll
                        for (int i = 0; i < 8; i++) acc[r][i] += p * elem<T>(vr[j], i);
                    }
                    m[r] = mx;
                }
            }
        }
        // merge the TPS lane groups, then lanes of group 0 write each row
        #pragma unroll
        for (int r = 0; r < R; r++) {
            const int e = rg + r;
            if (e >= n_stacked) break;
            const size_t prow_qh = (size_t)(part0 + e / g.group) * g.hq + h * g.group + e % g.group;
            merge_groups_and_write<LPT>(m[r], l[r], acc[r], g.part_o + prow_qh * D + c, g.part_lse + prow_qh,
                                        sub == 0, lane);
        }
    }
}

}  // namespace tkprefix_tree
