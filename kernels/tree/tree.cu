// Tree attention at node granularity in ThunderKittens (H100/H200, wgmma): executes a TreePlan's work list
// (src/tkprefix/tree_plan.py; docs/design.md, "Tree attention"; the contract is kernels/tree/launch_tree.h).
//
// attend: a persistent grid over the plan's MMA units (item, kv-head, stacked rows [row_begin, row_end)), in the plan's
// order (TreePlan.mma_units: an item of many rows is several units, so its row passes spread over the GPU, and a
// kv-head's units are adjacent, so they read its KV from L2). A unit's stacked query rows (of its item's leaf rows x
// the G q-heads of the kv-head) are taken NC * 64 at a time (NC consumer warpgroups of 64 rows, one wgmma M tile
// each); for each such row block the item's KV segments are streamed in 64-token tiles with an online softmax, and
// each stacked row writes one (o, lse) partial row: o in q's dtype (half the bytes of fp32; the merge accumulates in
// fp32), lse fp32.
//
// No producer warp and no TMA: every thread of the block is a consumer, and each KV tile is GATHERED token by token
// through the page table with 16-byte cp.async copies, so a node may start and end anywhere inside a page of any size
// and a tile may span several segments and pages. The tiles run through a ring of STAGES shared K/V buffers (2 or 3):
//   resolve: every thread walks the segment cursor; warp 0 writes the tile's 64 pool rows (tok_row) into shared
//            memory, STAGES tiles ahead of the one computed;
//   issue:   every thread starts cp.async copies of K and V rows into the swizzled buffer of tile t + STAGES - 1
//            (rows without a token: src_bytes = 0 zero-fills them, and their scores are set to -inf);
//   compute: the active warpgroups run Q K^T, the softmax step and P V on tile t while those copies fly (warp 0
//            first resolves tile t + STAGES: its page-table lookups delay its own warpgroup's wgmmas, not the copies).
// One block barrier per tile (plus one per row block, once its first tiles are resolved), after cp.async.wait_group
// + fence.proxy.async (the copies write through the generic proxy, wgmma reads through the async one); it also orders
// every wgmma of tile t - 1 before its buffer is refilled, and warp 0's tok_row writes before they are read.
// Checked on the H200 by tests/gpu/test_tk_tree.py and compute-sanitizer (docs/design.md, "The TK kernels as written").
//
// merge: kernels/common/tkp_merge_rows.cuh over the plan's per-leaf CSR (leaf_partial_offset / leaf_partial_index).
#include "kittens.cuh"
#include "../launch.h"
#include "launch_tree.h"
#include "../common/tkp_common.cuh"
#include "../common/tkp_softmax.cuh"
#include "../common/tkp_merge_rows.cuh"

using namespace kittens;

namespace tkprefix_tree {

constexpr int ROWS_PER_CONSUMER = 64;  // one wgmma M tile per consumer warpgroup
constexpr int KV_TILE = 64;            // tokens per KV tile

template<typename T, int D, int NC> struct tree_layout {
    static_assert(D == 64 || D == 128, "d_head must be 64 or 128");
    static_assert(NC == 1 || NC == 2, "1 or 2 consumer warpgroups");
    using q_tile  = st<T, ROWS_PER_CONSUMER, D>;
    using kv_tile = st<T, KV_TILE, D>;
    using att_fl  = rt_fl<16, KV_TILE>;        // per warp: 16 stacked rows x 64 keys
    using att_mma = rt<T, 16, KV_TILE>;
    using o_fl    = rt_fl<16, D>;
    using row_vec = typename att_fl::col_vec;  // one value per stacked row
    static constexpr int THREADS = NC * WARPGROUP_THREADS;
    static constexpr int MIN_BLOCKS = (NC == 1) ? 2 : 1;
    // K/V buffer pairs in the ring: tiles t + 1 .. t + STAGES - 1 load while t computes. Three, except one warpgroup
    // at D = 128, where three (~113 KB) would leave room for only one block per SM instead of MIN_BLOCKS = 2.
    static constexpr int STAGES = (NC == 1 && D == 128) ? 2 : 3;
    // q tiles + STAGES (K, V) tile pairs + swizzle alignment; D = 128: NC = 1 ~81 KB (2 blocks fit in 227 KB),
    // NC = 2 ~129 KB (one block: its registers allow no second); the static tok_row ring adds STAGES * 512 bytes
    static constexpr size_t SMEM = NC * sizeof(q_tile) + 2 * STAGES * sizeof(kv_tile) + 1024;

    struct globals {
        const T *q;                        // (n_rows, hq, D)
        const T *k, *v;                    // pools (n_pages, hkv, page_size, D)
        const int32_t *item_row_start, *item_row_end, *item_seg_offset, *item_partial_offset;
        const int32_t *seg_page, *seg_slot, *seg_len, *page_table;
        T *part_o;                         // (n_partials, hq, D), in q's dtype
        float *part_lse;                   // (n_partials, hq)
        int hq, group, hkv, page_size, n_items;
        const int32_t *mma_units;          // (n_mma_units, 4): item, kv-head, first and end stacked row (wgmma kernel)
        int n_mma_units;
    };
};

// A pair of fp32 partial values as two of T (partials are stored in q's dtype: half the bytes of fp32)
__device__ static inline void store_pair(__nv_bfloat16 *dst, float2 v) {
    *reinterpret_cast<__nv_bfloat162 *>(dst) = __floats2bfloat162_rn(v.x, v.y);
}
__device__ static inline void store_pair(__half *dst, float2 v) {
    *reinterpret_cast<__half2 *>(dst) = __floats2half2_rn(v.x, v.y);
}

__device__ static inline void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ static inline void st_shared_v4(uint32_t dst, uint4 v) {
    asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" :: "r"(dst), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}

// 16-byte global -> shared copy; src_bytes = 0 reads nothing and zero-fills the 16 bytes
__device__ static inline void cp_async_16(uint32_t dst, const void *src, uint32_t src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ static inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template<int N> __device__ static inline void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }

template<typename T, int D, int NC>
__global__ __launch_bounds__(tree_layout<T, D, NC>::THREADS, tree_layout<T, D, NC>::MIN_BLOCKS)
void tree_attend_kernel(const __grid_constant__ typename tree_layout<T, D, NC>::globals g) {
    using L = tree_layout<T, D, NC>;
    extern __shared__ int __shm[];
    tma_swizzle_allocator al((int*)&__shm[0]);
    constexpr int S = L::STAGES;
    typename L::q_tile  (&q_smem)[NC] = al.allocate<typename L::q_tile, NC>();
    typename L::kv_tile (&k_smem)[S]  = al.allocate<typename L::kv_tile, S>();
    typename L::kv_tile (&v_smem)[S]  = al.allocate<typename L::kv_tile, S>();
    __shared__ long long tok_row[S][KV_TILE];  // per stage: pool row ((page * hkv + h) * page_size + slot) of each
                                               // tile token; -1: none

    constexpr int VECS_PER_ROW = D / 8;     // 16-byte vectors per row
    constexpr float SCALE = tkp::softmax_scale_log2<D>();
    const int warpid = kittens::warpid(), wg = warpid / WARPGROUP_WARPS, lane = laneid();
    const int tid = threadIdx.x % WARPGROUP_THREADS;  // thread within the warpgroup
    const uint32_t q_base = static_cast<uint32_t>(__cvta_generic_to_shared(&q_smem[wg].data[0]));

    // Every loop bound below depends only on the unit and the plan, so all threads of the block run the same
    // iterations and reach every __syncthreads.
    for (int u = blockIdx.x; u < g.n_mma_units; u += gridDim.x) {
        const int4 unit = reinterpret_cast<const int4 *>(g.mma_units)[u];  // item, kv-head, stacked rows [z, w)
        const int item = unit.x, h = unit.y, row_end = unit.w;
        const int row0 = g.item_row_start[item];
        const int s_begin = g.item_seg_offset[item], s_end = g.item_seg_offset[item + 1];
        const int part0 = g.item_partial_offset[item];

        for (int rb = unit.z; rb < row_end; rb += NC * ROWS_PER_CONSUMER) {
            const int tile_row0 = rb + wg * ROWS_PER_CONSUMER;  // first stacked row of this warpgroup's tile
            const int my_rows = min(ROWS_PER_CONSUMER, row_end - tile_row0);  // <= 0: idle in this row block
            const bool active = my_rows > 0;

            // gather this warpgroup's query rows (rows past my_rows are zero: finite, and never written back). Only
            // this warpgroup's wgmmas read q_smem[wg], and its threads waited for them (mma_async_wait).
            if (active) {
                for (int v = tid; v < ROWS_PER_CONSUMER * VECS_PER_ROW; v += WARPGROUP_THREADS) {
                    const int r = v / VECS_PER_ROW, c = (v % VECS_PER_ROW) * 8;
                    uint4 val = make_uint4(0, 0, 0, 0);
                    if (r < my_rows) {
                        const int e = tile_row0 + r;
                        const int leaf = row0 + e / g.group, qh = h * g.group + e % g.group;
                        val = *reinterpret_cast<const uint4*>(g.q + ((size_t)leaf * g.hq + qh) * D + c);
                    }
                    st_shared_v4(L::q_tile::idx(q_base, {r, c}), val);
                }
            }
            // (made visible to wgmma by the fence + barrier before the first KV tile's wgmma)

            // resolve: the next tile's token addresses into tok_row[stage]; returns its token count (0: no tile
            // left). Every thread advances the cursor (same values everywhere), warp 0 writes.
            int seg = s_begin, seg_off = 0;  // cursor: next token is token seg_off of segment seg
            auto resolve = [&](int stage) -> int {
                int filled = 0;
                while (filled < KV_TILE && seg < s_end) {
                    const int len = g.seg_len[seg];
                    const int n = min(len - seg_off, KV_TILE - filled);
                    if (warpid == 0) {
                        const int page0 = g.seg_page[seg], pos0 = g.seg_slot[seg] + seg_off;
                        for (int j = lane; j < n; j += WARP_THREADS) {
                            const int pos = pos0 + j;
                            const long long page = g.page_table[page0 + pos / g.page_size];
                            tok_row[stage][filled + j] = (page * g.hkv + h) * g.page_size + pos % g.page_size;
                        }
                    }
                    filled += n;
                    seg_off += n;
                    if (seg_off == len) { seg++; seg_off = 0; }
                }
                if (warpid == 0) {
                    for (int j = filled + lane; j < KV_TILE; j += WARP_THREADS) tok_row[stage][j] = -1;
                }
                return filled;
            };
            // issue: cp.async copies of the K and V rows listed in tok_row[stage] into the stage's swizzled tiles
            auto issue = [&](int stage) {
                const uint32_t k_base = static_cast<uint32_t>(__cvta_generic_to_shared(&k_smem[stage].data[0]));
                const uint32_t v_base = static_cast<uint32_t>(__cvta_generic_to_shared(&v_smem[stage].data[0]));
                for (int v = threadIdx.x; v < KV_TILE * VECS_PER_ROW; v += L::THREADS) {
                    const int r = v / VECS_PER_ROW, c = (v % VECS_PER_ROW) * 8;
                    const long long row = tok_row[stage][r];
                    const long long off = row >= 0 ? row * D + c : 0;  // no token: a valid address, nothing read
                    const uint32_t bytes = row >= 0 ? 16 : 0;
                    cp_async_16(L::kv_tile::idx(k_base, {r, c}), g.k + off, bytes);
                    cp_async_16(L::kv_tile::idx(v_base, {r, c}), g.v + off, bytes);
                }
            };

            typename L::att_fl  att;
            typename L::att_mma att_mma;
            typename L::o_fl    o_reg;
            typename L::row_vec max_vec, norm_vec, max_last_scaled, max_scaled;
            warp::neg_infty(max_vec);
            warp::zero(norm_vec);
            warp::zero(o_reg);

            // Pipeline over the tiles t = 0, 1, ...: tile t lives in stage t % S; filled[i] is the token count of
            // tile t + i (0: past the item's end), resolved S tiles ahead of the computed one, copied S - 1 ahead.
            int filled[S];
            #pragma unroll
            for (int i = 0; i < S; i++) filled[i] = resolve(i);
            // tok_row[0 .. S-1] written; every wgmma of the previous row block is done (each thread waited for its
            // warpgroup's before arriving), so every K/V stage may be refilled
            __syncthreads();
            #pragma unroll
            for (int i = 0; i < S - 1; i++) {
                if (filled[i] > 0) issue(i);
                cp_async_commit();  // one group per tile, empty past the end, so wait_group<S - 2> always means tile t
            }

            int stage = 0;  // stage of tile t
            while (filled[0] > 0) {  // same value in every thread
                cp_async_wait<S - 2>();  // this thread's copies of tile t landed (tiles t+1 .. t+S-2 may fly)
                fence_async_shared();    // its cp.async (and q) writes -> wgmma (async proxy)
                // every thread's copies of tile t landed; every wgmma of tile t - 1 is done, so its stage
                // (t + S - 1) % S may be refilled; warp 0's tok_row writes for tile t + S - 1 are visible
                __syncthreads();
                const int fill_stage = stage == 0 ? S - 1 : stage - 1;  // (t + S - 1) % S
                if (filled[S - 1] > 0) issue(fill_stage);
                cp_async_commit();

                // tile t + S into tok_row[stage] (tok_row[stage] was last read by tile t's issue, before the barrier
                // above, and is next read by its issue after the next barrier). Here, not inside the Q K^T wgmma:
                // warp 0's divergent lookups there make ptxas serialize the wgmmas (C7518). With NC = 2 the other
                // warpgroup's wgmmas overlap them.
                const int next_filled = resolve(stage);
                const int cur_filled = filled[0];
                if (active) {
                    warpgroup::mm_ABt(att, q_smem[wg], k_smem[stage]);
                    warp::mul(max_last_scaled, max_vec, SCALE);
                    warpgroup::mma_async_wait();
                    if (cur_filled < KV_TILE) warp::right_fill(att, att, cur_filled, base_types::constants<float>::neg_infty());

                    tkp::online_softmax_step(att, max_vec, norm_vec, max_last_scaled, max_scaled, SCALE);
                    warp::copy(att_mma, att);
                    warp::mul_row(o_reg, o_reg, max_last_scaled);

                    warpgroup::mma_AB(o_reg, att_mma, v_smem[stage]);
                    warpgroup::mma_async_wait();  // before the next barrier: the stage may then be refilled
                }
                #pragma unroll
                for (int i = 0; i < S - 1; i++) filled[i] = filled[i + 1];
                filled[S - 1] = next_filled;
                stage = stage == S - 1 ? 0 : stage + 1;
            }

            if (!active) continue;
            // ---- finish: o /= sum, lse = max*scale*ln2 + ln(sum); write this warp's 16 stacked rows ----
            warp::div_row(o_reg, o_reg, norm_vec);
            warp::mul(max_scaled, max_scaled, 0.69314718055994530942f);  // ln 2
            warp::log(norm_vec, norm_vec);
            warp::add(norm_vec, norm_vec, max_scaled);

            const int warp_row0 = tile_row0 + (warpid % WARPGROUP_WARPS) * 16;
            #pragma unroll
            for (int half_ = 0; half_ < 2; half_++) {  // rows lane/4 and lane/4 + 8 of the warp's 16
                const int e = warp_row0 + lane / 4 + 8 * half_;
                if (e >= row_end) continue;  // another unit's row, or none
                const int prow = part0 + e / g.group, qh = h * g.group + e % g.group;
                T *dst = g.part_o + ((size_t)prow * g.hq + qh) * D;
                #pragma unroll
                for (int j = 0; j < D / 16; j++) {
                    const int col = j * 16 + 2 * (lane % 4);
                    store_pair(dst + col, o_reg.tiles[0][j].data[0 + half_]);
                    store_pair(dst + col + 8, o_reg.tiles[0][j].data[2 + half_]);
                }
                if (lane % 4 == 0) {
                    g.part_lse[(size_t)prow * g.hq + qh] = half_ == 0 ? norm_vec[0][0].x : norm_vec[0][0].y;
                }
            }
        }
    }
}

}  // namespace tkprefix_tree

#include "tree_decode.cuh"

namespace tkprefix_tree {

// ---- host side ----
template<typename T, int D, int NC>
static const char *launch_attend(const void *q, const void *k_pool, const void *v_pool, int hkv, int page_size,
                                 int hq, const int32_t *row_start, const int32_t *row_end, const int32_t *seg_offset,
                                 const int32_t *partial_offset, int n_items, const int32_t *mma_units,
                                 int n_mma_units, const int32_t *seg_page,
                                 const int32_t *seg_slot, const int32_t *seg_len, const int32_t *page_table,
                                 void *po, float *pl, int max_blocks, cudaStream_t stream) {
    using L = tree_layout<T, D, NC>;
    typename L::globals g{(const T*)q, (const T*)k_pool, (const T*)v_pool, row_start, row_end, seg_offset,
                          partial_offset, seg_page, seg_slot, seg_len, page_table, (T*)po, pl, hq, hq / hkv, hkv,
                          page_size, n_items, mma_units, n_mma_units};
    auto kernel = tree_attend_kernel<T, D, NC>;
    static int resident = 0;  // blocks of this instantiation that fit on the whole GPU (computed once)
    if (resident == 0) {
        int dev = 0, sms = 0, per_sm = 0;
        TKP_TRY(cudaGetDevice(&dev));
        TKP_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::SMEM));
        TKP_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        TKP_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, L::THREADS, L::SMEM));
        if (per_sm < 1) return tkp::arg_error("tkp_tree: tree_attend_kernel does not fit on an SM");
        resident = sms * per_sm;
    }
    long long blocks = max_blocks > 0 ? (long long)max_blocks : (long long)resident;
    if (blocks > n_mma_units) blocks = n_mma_units;
    kernel<<<dim3((unsigned)blocks), L::THREADS, L::SMEM, stream>>>(g);
    return tkp::launch_error("tree_attend_kernel");
}

template<typename T, int D, int ROWS>
static const char *launch_decode(const void *q, const void *k_pool, const void *v_pool, int hkv, int page_size,
                                 int hq, const int32_t *row_start, const int32_t *row_end, const int32_t *seg_offset,
                                 const int32_t *partial_offset, int item0, int n_items, const int32_t *seg_page,
                                 const int32_t *seg_slot, const int32_t *seg_len, const int32_t *page_table,
                                 void *po, float *pl, cudaStream_t stream) {
    using L = decode_layout<T, D, ROWS>;
    typename tree_layout<T, D, 1>::globals g{(const T*)q, (const T*)k_pool, (const T*)v_pool, row_start, row_end,
                                             seg_offset, partial_offset, seg_page, seg_slot, seg_len, page_table,
                                             (T*)po, pl, hq, hq / hkv, hkv, page_size, n_items, nullptr, 0};
    const long long units = (long long)(n_items - item0) * hkv;
    const long long blocks = (units + L::WARPS - 1) / L::WARPS;
    if (blocks > 0x7fffffffLL) return tkp::arg_error("tkp_tree: too many decode units for one grid");
    tree_decode_kernel<T, D, ROWS><<<dim3((unsigned)blocks), L::THREADS, 0, stream>>>(g, item0);
    return tkp::launch_error("tree_decode_kernel");
}

}  // namespace tkprefix_tree

using namespace tkprefix_tree;

extern "C" const char *tkp_tree_attend(int dtype, int d_head, int consumers,
                                       const void *q, const void *k_pool, const void *v_pool,
                                       int n_pages, int n_kv_heads, int page_size, int n_q_heads,
                                       const int32_t *item_row_start, const int32_t *item_row_end,
                                       const int32_t *item_seg_offset, const int32_t *item_partial_offset,
                                       int n_items, int n_mma_items, const int32_t *mma_units, int n_mma_units,
                                       int decode_pass_rows, const int32_t *seg_page,
                                       const int32_t *seg_slot, const int32_t *seg_len, const int32_t *page_table,
                                       void *part_o, float *part_lse, int max_blocks, void *stream) {
    if (d_head != 64 && d_head != 128) return "tkp_tree: d_head must be 64 or 128";
    if (consumers != 1 && consumers != 2) return "tkp_tree: consumers must be 1 or 2";
    if (dtype != TKP_BF16 && dtype != TKP_FP16) return "tkp_tree: dtype must be bf16 or fp16";
    if (n_kv_heads <= 0 || n_q_heads <= 0 || n_q_heads % n_kv_heads != 0)
        return "tkp_tree: n_q_heads must be a positive multiple of n_kv_heads";
    if (n_pages <= 0 || page_size <= 0) return "tkp_tree: n_pages and page_size must be positive";
    if (n_items < 0) return "tkp_tree: n_items must be >= 0";
    if ((long long)n_items * n_kv_heads > 0x7fffffffLL) return "tkp_tree: n_items * n_kv_heads must fit in int32";
    if (n_mma_items < 0 || n_mma_items > n_items) return "tkp_tree: n_mma_items must be in [0, n_items]";
    if (n_mma_items > 0 && (n_mma_units < n_mma_items * n_kv_heads || !mma_units))
        return "tkp_tree: n_mma_units must be >= n_mma_items * n_kv_heads (a unit per item row pass and kv-head)";
    if (reinterpret_cast<uintptr_t>(mma_units) % 16) return "tkp_tree: mma_units must be 16-byte aligned";
    if (decode_pass_rows != 1 && decode_pass_rows != 2) return "tkp_tree: decode_pass_rows must be 1 or 2";
    if (n_items == 0) return nullptr;
    if (!q || !k_pool || !v_pool || !item_row_start || !item_row_end || !item_seg_offset || !item_partial_offset ||
        !seg_page || !seg_slot || !seg_len || !page_table || !part_o || !part_lse)
        return "tkp_tree: null pointer argument";
    cudaStream_t s = (cudaStream_t)stream;
    const bool b = dtype == TKP_BF16;
    #define TKP_ATTEND(TT, DD, NN) launch_attend<TT, DD, NN>(q, k_pool, v_pool, n_kv_heads, page_size, n_q_heads, \
        item_row_start, item_row_end, item_seg_offset, item_partial_offset, n_mma_items, mma_units, n_mma_units, \
        seg_page, seg_slot, seg_len, page_table, part_o, part_lse, max_blocks, s)
    #define TKP_DECODE(TT, DD, RR) launch_decode<TT, DD, RR>(q, k_pool, v_pool, n_kv_heads, page_size, n_q_heads, \
        item_row_start, item_row_end, item_seg_offset, item_partial_offset, n_mma_items, n_items, seg_page, seg_slot, \
        seg_len, page_table, part_o, part_lse, s)
    const char *err = nullptr;
    if (n_mma_items > 0) {  // MMA items [0, n_mma_items): the persistent wgmma kernel
        if (d_head == 128) err = consumers == 1 ? (b ? TKP_ATTEND(bf16, 128, 1) : TKP_ATTEND(half, 128, 1))
                                                : (b ? TKP_ATTEND(bf16, 128, 2) : TKP_ATTEND(half, 128, 2));
        else err = consumers == 1 ? (b ? TKP_ATTEND(bf16, 64, 1) : TKP_ATTEND(half, 64, 1))
                                  : (b ? TKP_ATTEND(bf16, 64, 2) : TKP_ATTEND(half, 64, 2));
        if (err) return err;
    }
    if (n_mma_items < n_items) {  // decode items [n_mma_items, n_items): a warp per unit
        if (d_head == 128) err = decode_pass_rows == 1 ? (b ? TKP_DECODE(bf16, 128, 1) : TKP_DECODE(half, 128, 1))
                                                       : (b ? TKP_DECODE(bf16, 128, 2) : TKP_DECODE(half, 128, 2));
        else err = decode_pass_rows == 1 ? (b ? TKP_DECODE(bf16, 64, 1) : TKP_DECODE(half, 64, 1))
                                         : (b ? TKP_DECODE(bf16, 64, 2) : TKP_DECODE(half, 64, 2));
    }
    return err;
    #undef TKP_ATTEND
    #undef TKP_DECODE
}

extern "C" const char *tkp_tree_merge(int dtype, int d_head, int n_rows, int n_q_heads,
                                      const void *part_o, const float *part_lse,
                                      const int32_t *leaf_partial_offset, const int32_t *leaf_partial_index,
                                      void *o, float *lse, void *stream) {
    if (d_head != 64 && d_head != 128) return "tkp_tree: d_head must be 64 or 128";
    if (dtype != TKP_BF16 && dtype != TKP_FP16) return "tkp_tree: dtype must be bf16 or fp16";
    if (n_rows < 0 || n_q_heads <= 0) return "tkp_tree: n_rows must be >= 0 and n_q_heads > 0";
    if (n_rows == 0) return nullptr;
    if (!leaf_partial_offset || !o) return "tkp_tree: null pointer argument";
    cudaStream_t s = (cudaStream_t)stream;
    const cudaError_t err = tkp::launch_merge_rows<true>(dtype == TKP_BF16, d_head, n_rows, n_q_heads, part_o, part_lse,
                                                   leaf_partial_offset, leaf_partial_index, o, lse, s);
    return err == cudaSuccess ? nullptr : tkp::error_message("tree merge_rows_kernel", err);
}
