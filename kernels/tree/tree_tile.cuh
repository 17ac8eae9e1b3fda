// Tree attention, decode items: the TreePlan items of a few stacked rows (leaves, nodes over a few leaves;
// CostModel.is_decode: at most decode_piece_tokens = 64 tokens each), where a 64-row wgmma tile would be mostly
// padding and the work is a memory-bound read of the item's KV. Included by tree.cu; same work-list contract
// (launch_tree.h), same (o, lse) partials.
//
// One block (four warps) per unit (item, kv-head), 5 blocks an SM: the unit's whole 64-token tile is gathered through
// the page table at once (16-byte cp.async, every thread a few token rows), then tile16::step
// (kernels/common/tkp_tile16.cuh) computes 16 stacked rows on the tensor cores. So a unit waits on one chain of
// dependent loads (its metadata, the page table, the tile) where a warp a unit walked its tokens 16 at a time, two
// round trips each. More than 64 tokens: tile after tile, with the online softmax; more than 16 stacked rows: row
// group after row group on the same tile (gathered again only past 64 tokens).
#pragma once
#include "../common/tkp_tile16.cuh"

namespace tkprefix_tree {

// Tokens [t0, t0 + n) of the unit's segments (kv-head h) into the K / V tile (rows >= n zero-filled); no commit.
// Three phases, so that the thread's PASSES rows cost one chain of dependent loads (seg_len, then seg_slot /
// seg_page, then the page table), not one chain each: cp_async_16's "memory" clobber keeps the compiler from
// moving a later row's loads above an earlier row's copy. Rows increase with i, so the segment walk goes on from
// the previous row's segment; a row past the end (r >= n) resolves token t0 + n - 1 (a valid address) and copies
// nothing.
template<typename T, int D>
__device__ __forceinline__ void gather_tile(const typename tree_layout<T, D, 1>::globals &g,
                                            const tkp::tile16::smem<T, D> &sm, int h, int s_begin, int t0, int n) {
    using C = tkp::tile_chunks<D>;
    constexpr int NP = C::PASSES;
    const int col = C::col();
    int seg[NP], off[NP];
    int s = s_begin, s_t0 = 0, len = g.seg_len[s_begin];   // segment s holds the item's tokens [s_t0, s_t0 + len)
    #pragma unroll
    for (int i = 0; i < NP; i++) {   // 1. each row's segment and offset (the item's segments hold its tokens in order)
        const int t = t0 + min(C::row() + i * C::ROWS_PER_PASS, n - 1);
        while (t - s_t0 >= len) {
            s_t0 += len;
            len = g.seg_len[++s];
        }
        seg[i] = s;
        off[i] = t - s_t0;
    }
    int pidx[NP], slot[NP];
    #pragma unroll
    for (int i = 0; i < NP; i++) {   // 2. positions: no branch, so the loads of every row issue together
        const int pos = g.seg_slot[seg[i]] + off[i];
        pidx[i] = g.seg_page[seg[i]] + pos / g.page_size;
        slot[i] = pos % g.page_size;
    }
    long long page[NP];
    #pragma unroll
    for (int i = 0; i < NP; i++) page[i] = g.page_table[pidx[i]];   // 3. the page table, then the copies
    #pragma unroll
    for (int i = 0; i < NP; i++) {
        const int r = C::row() + i * C::ROWS_PER_PASS;
        const long long row = (page[i] * g.hkv + h) * g.page_size + slot[i];
        tkp::cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&sm.k[r][col])), g.k + row * D + col, r < n);
        tkp::cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&sm.v[r][col])), g.v + row * D + col, r < n);
    }
}

// Stacked rows [e0, e0 + 16) of the unit into sm.q (rows >= n_stacked zero-filled); stacked row e is leaf row
// row0 + e / group, q-head h * group + e % group. No commit.
template<typename T, int D>
__device__ __forceinline__ void load_stacked_rows(const typename tree_layout<T, D, 1>::globals &g,
                                                  const tkp::tile16::smem<T, D> &sm, int h, int row0, int e0,
                                                  int n_stacked) {
    using C = tkp::tile_chunks<D>;
    #pragma unroll
    for (int i = 0; i < 16 / C::ROWS_PER_PASS; i++) {
        const int r = C::row() + i * C::ROWS_PER_PASS, e = e0 + r;
        const bool ok = e < n_stacked;
        const size_t qh = (size_t)(row0 + e / g.group) * g.hq + h * g.group + e % g.group;
        const T *src = ok ? g.q + qh * D + C::col() : g.q;
        tkp::cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&sm.q[r][C::col()])), src, ok);
    }
}

template<typename T, int D>
__global__ __launch_bounds__(tkp::tile16::THREADS, tkp::tile16::layout<T, D>::BLOCKS)
void tree_tile_kernel(const __grid_constant__ typename tree_layout<T, D, 1>::globals g, int item0) {
    namespace t16 = tkp::tile16;
    constexpr int FPW = D / t16::WARPS;   // features of O a warp
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const t16::smem<T, D> sm(smem_raw);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int gid = lane / 4, tig = lane % 4;
    const int item = item0 + (int)(blockIdx.x / g.hkv), h = (int)(blockIdx.x % g.hkv);
    const int row0 = g.item_row_start[item], n_stacked = (g.item_row_end[item] - row0) * g.group;
    const int s_begin = g.item_seg_offset[item], s_end = g.item_seg_offset[item + 1];
    const int part0 = g.item_partial_offset[item];
    int n_tok = 0;
    for (int s = s_begin; s < s_end; s++) n_tok += g.seg_len[s];

    for (int e0 = 0; e0 < n_stacked; e0 += 16) {   // row groups of 16 stacked rows
        if (e0 > 0) __syncthreads();   // the last group's reads of the buffers are done
        if (n_tok > 0) load_stacked_rows<T, D>(g, sm, h, row0, e0, n_stacked);   // (no tile: o = 0, lse = -inf)
        const int lim0 = e0 + gid < n_stacked ? n_tok : 0, lim1 = e0 + gid + 8 < n_stacked ? n_tok : 0;
        t16::state<D> st;
        for (int t0 = 0; t0 < n_tok; t0 += t16::KEYS) {
            if (t0 > 0) __syncthreads();
            if (e0 == 0 || n_tok > t16::KEYS) gather_tile<T, D>(g, sm, h, s_begin, t0, min(t16::KEYS, n_tok - t0));
            tkp::cp_async_commit();
            tkp::cp_async_wait<0>();
            __syncthreads();
            if (t0 == 0) t16::step<T, D, true>(sm, st, t0, min(t0 + t16::KEYS, n_tok), lim0, lim1);
            else         t16::step<T, D>(sm, st, t0, min(t0 + t16::KEYS, n_tok), lim0, lim1);
        }
        // each lane writes its pairs of features (f0 + 8 nt + 2 tig, +1) of its two rows; warp 0 the rows' lse
        #pragma unroll
        for (int hi = 0; hi < 2; hi++) {   // rows gid, gid + 8
            const int e = e0 + gid + 8 * hi;
            if (e >= n_stacked) continue;
            const float l = hi ? st.l1 : st.l0, m = hi ? st.m1 : st.m0, inv = l > 0.f ? 1.f / l : 0.f;
            const size_t prow_qh = (size_t)(part0 + e / g.group) * g.hq + h * g.group + e % g.group;
            T *dst = g.part_o + prow_qh * D + warp * FPW + 2 * tig;
            #pragma unroll
            for (int nt = 0; nt < FPW / 8; nt++)
                *reinterpret_cast<uint32_t *>(dst + nt * 8) =
                    tkp::pack2<T>(st.acc[nt][2 * hi] * inv, st.acc[nt][2 * hi + 1] * inv);
            if (warp == 0 && tig == 0) g.part_lse[prow_qh] = l > 0.f ? (m + log2f(l)) * tkp::LN2 : -INFINITY;
        }
    }
}

}  // namespace tkprefix_tree
