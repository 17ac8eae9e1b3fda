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
// Producer warps gather the KV tiles; the consumer warpgroups compute. No TMA: each KV tile is GATHERED token by
// token through the page table with 16-byte cp.async copies, so a node may start and end anywhere inside a page of
// any size and a tile may span several segments and pages. The tiles run through a ring of STAGES shared K/V buffers
// (2 or 3), handed over by mbarriers, never by a block barrier:
//   producer (the warps after the consumers): for every unit, row block and tile, in the consumers' order, waits
//            until the consumers released the stage (empty[stage]), resolves the tile's 64 pool rows (a cursor over
//            the item's segments), starts the cp.async copies (rows without a token: src_bytes = 0 zero-fills them),
//            and posts the tile to full[stage]: each producer thread's copies arrive on it when they land
//            (cp.async.mbarrier.arrive), its first thread once more after writing tile_info (release);
//   consumers: each warpgroup waits for full[stage], fences the generic-proxy copies before its wgmmas (async
//            proxy), runs Q K^T, the softmax step and P V, and each warp arrives on empty[stage] after its wgmmas.
// The producer runs up to STAGES tiles ahead, across row blocks and units, and the two warpgroups drift apart by
// up to STAGES - 1 tiles, so one's softmax overlaps the other's wgmmas (before, a block barrier a tile kept them in
// step and the page-table lookups on warp 0's path).
// Checked on the GPU by tests/gpu/test_tk_tree.py and compute-sanitizer (docs/design.md, "The TK kernels as written").
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
    static constexpr int CONSUMER_THREADS = NC * WARPGROUP_THREADS;
    // producer warps after the consumers: a warpgroup beside two consumer warpgroups (384 threads: 168 registers
    // a thread, the consumers need 164); two warps beside one, whose two blocks an SM (384 threads) leave 168
    static constexpr int PRODUCER_WARPS = NC == 2 ? WARPGROUP_WARPS : 2;
    static constexpr int PRODUCER_THREADS = PRODUCER_WARPS * WARP_THREADS;
    static constexpr int THREADS = CONSUMER_THREADS + PRODUCER_THREADS;
    static constexpr int MIN_BLOCKS = (NC == 1) ? 2 : 1;
    // K/V buffer pairs in the ring: tiles t + 1 .. t + STAGES - 1 load while t computes. Three, except one warpgroup
    // at D = 128, where three (~113 KB) would leave room for only one block per SM instead of MIN_BLOCKS = 2.
    static constexpr int STAGES = (NC == 1 && D == 128) ? 2 : 3;
    // q tiles + STAGES (K, V) tile pairs + swizzle alignment; D = 128: NC = 1 ~81 KB (2 blocks fit in 227 KB),
    // NC = 2 ~129 KB (one block: its registers allow no second); the static tok_row, tile_info and mbarriers add
    // ~0.6 KB
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

// Arrives on the mbarrier once every cp.async this thread started before has landed (noinc: the barrier's expected
// count includes this arrival)
__device__ static inline void cp_async_arrive_noinc(semaphore &bar) {
    const uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" :: "r"(b) : "memory");
}
// the warpgroup's 128 threads (named barrier 1 + wg; 0 is __syncthreads')
__device__ static inline void warpgroup_sync(int wg) {
    asm volatile("bar.sync %0, %1;\n" :: "r"(1 + wg), "n"(WARPGROUP_THREADS) : "memory");
}
// the producer warps (named barrier 3)
template<int THREADS> __device__ static inline void producer_sync() {
    asm volatile("bar.sync 3, %0;\n" :: "n"(THREADS) : "memory");
}
constexpr int LAST_TILE = 1 << 16;  // tile_info: token count | LAST_TILE on a row block's last tile

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
    __shared__ semaphore full[S], empty[S];  // stage holds a tile / stage may be refilled
    __shared__ int tile_info[S];             // per stage: token count | LAST_TILE
    __shared__ long long tok_row[KV_TILE];   // the producer's tile: pool row ((page * hkv + h) * page_size + slot)
                                             // of each token; -1: none

    constexpr int VECS_PER_ROW = D / 8;     // 16-byte vectors per row
    constexpr float SCALE = tkp::softmax_scale_log2<D>();
    const int warpid = kittens::warpid(), lane = laneid();
    if (threadIdx.x == 0) {
        #pragma unroll
        for (int i = 0; i < S; i++) {
            init_semaphore(full[i], L::PRODUCER_THREADS + 1);  // each producer thread's copies, then one post
            init_semaphore(empty[i], NC * WARPGROUP_WARPS);    // every consumer warp, after its wgmmas
        }
    }
    __syncthreads();  // the only block barrier: from here the roles meet on the mbarriers alone

    // Producer and consumers walk the same units, row blocks and tiles (every bound depends only on the unit and
    // the plan); tile n of the walk uses stage n % S, in that stage's fill n / S (the mbarriers' phase parity).
    if (threadIdx.x >= L::CONSUMER_THREADS) {
        const int pt = threadIdx.x - L::CONSUMER_THREADS;  // producer thread
        int n = 0;
        for (int u = blockIdx.x; u < g.n_mma_units; u += gridDim.x) {
            const int4 unit = reinterpret_cast<const int4 *>(g.mma_units)[u];  // item, kv-head, stacked rows [z, w)
            const int item = unit.x, h = unit.y;
            const int s_begin = g.item_seg_offset[item], s_end = g.item_seg_offset[item + 1];
            for (int rb = unit.z; rb < unit.w; rb += NC * ROWS_PER_CONSUMER) {
                int seg = s_begin, seg_off = 0;  // cursor: next token is token seg_off of segment seg
                bool last = false;
                for (; !last; n++) {
                    const int stage = n % S;
                    if (n >= S) kittens::wait(empty[stage], (n / S - 1) & 1);
                    int filled = 0;  // resolve: the tile's pool rows into tok_row (every producer thread walks)
                    while (filled < KV_TILE && seg < s_end) {
                        const int len = g.seg_len[seg];
                        const int cnt = min(len - seg_off, KV_TILE - filled);
                        const int page0 = g.seg_page[seg], pos0 = g.seg_slot[seg] + seg_off;
                        for (int j = pt; j < cnt; j += L::PRODUCER_THREADS) {
                            const int pos = pos0 + j;
                            const long long page = g.page_table[page0 + pos / g.page_size];
                            tok_row[filled + j] = (page * g.hkv + h) * g.page_size + pos % g.page_size;
                        }
                        filled += cnt;
                        seg_off += cnt;
                        if (seg_off == len) { seg++; seg_off = 0; }
                    }
                    for (int j = filled + pt; j < KV_TILE; j += L::PRODUCER_THREADS) tok_row[j] = -1;
                    last = seg >= s_end;
                    producer_sync<L::PRODUCER_THREADS>();
                    // issue: copies of the K and V rows into the stage's swizzled tiles, 16 threads a 256-byte row
                    const uint32_t k_base = static_cast<uint32_t>(__cvta_generic_to_shared(&k_smem[stage].data[0]));
                    const uint32_t v_base = static_cast<uint32_t>(__cvta_generic_to_shared(&v_smem[stage].data[0]));
                    #pragma unroll 4
                    for (int v = pt; v < KV_TILE * VECS_PER_ROW; v += L::PRODUCER_THREADS) {
                        const int r = v / VECS_PER_ROW, c = (v % VECS_PER_ROW) * 8;
                        const long long row = tok_row[r];
                        const long long off = row >= 0 ? row * D + c : 0;  // no token: a valid address, nothing read
                        const uint32_t bytes = row >= 0 ? 16 : 0;
                        cp_async_16(L::kv_tile::idx(k_base, {r, c}), g.k + off, bytes);
                        cp_async_16(L::kv_tile::idx(v_base, {r, c}), g.v + off, bytes);
                    }
                    cp_async_arrive_noinc(full[stage]);
                    if (pt == 0) {
                        tile_info[stage] = filled | (last ? LAST_TILE : 0);
                        arrive(full[stage]);  // release: tile_info
                    }
                    producer_sync<L::PRODUCER_THREADS>();  // tok_row read by all before the next resolve
                }
            }
        }
        asm volatile("cp.async.wait_all;\n" ::: "memory");
        return;
    }

    const int wg = warpid / WARPGROUP_WARPS;
    const int tid = threadIdx.x % WARPGROUP_THREADS;  // thread within the warpgroup
    const uint32_t q_base = static_cast<uint32_t>(__cvta_generic_to_shared(&q_smem[wg].data[0]));
    int n = 0;
    for (int u = blockIdx.x; u < g.n_mma_units; u += gridDim.x) {
        const int4 unit = reinterpret_cast<const int4 *>(g.mma_units)[u];  // item, kv-head, stacked rows [z, w)
        const int item = unit.x, h = unit.y, row_end = unit.w;
        const int row0 = g.item_row_start[item];
        const int part0 = g.item_partial_offset[item];

        for (int rb = unit.z; rb < row_end; rb += NC * ROWS_PER_CONSUMER) {
            const int tile_row0 = rb + wg * ROWS_PER_CONSUMER;  // first stacked row of this warpgroup's tile
            const int my_rows = min(ROWS_PER_CONSUMER, row_end - tile_row0);  // <= 0: idle in this row block
            const bool active = my_rows > 0;

            // gather this warpgroup's query rows (rows past my_rows are zero: finite, and never written back). Only
            // this warpgroup's wgmmas read q_smem[wg]; the barrier orders them (each thread waited for its own)
            // before the rewrite, the fence and the second barrier the rewrite before the next wgmma.
            warpgroup_sync(wg);
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
            fence_async_shared();
            warpgroup_sync(wg);

            typename L::att_fl  att;
            typename L::att_mma att_mma;
            typename L::o_fl    o_reg;
            typename L::row_vec max_vec, norm_vec, max_last_scaled, max_scaled;
            warp::neg_infty(max_vec);
            warp::zero(norm_vec);
            warp::zero(o_reg);

            // the row block's tiles, as the producer posts them; an idle warpgroup still takes each tile's turn
            // (its arrivals on empty[] belong to that tile's phase)
            for (bool last = false; !last; n++) {
                const int stage = n % S;
                kittens::wait(full[stage], (n / S) & 1);
                const int info = tile_info[stage];
                const int filled = info & (LAST_TILE - 1);
                last = info & LAST_TILE;
                fence_async_shared();  // the producer's cp.async writes (generic proxy) -> this thread's wgmmas
                if (active && filled > 0) {
                    warpgroup::mm_ABt(att, q_smem[wg], k_smem[stage]);
                    warp::mul(max_last_scaled, max_vec, SCALE);
                    warpgroup::mma_async_wait();
                    if (filled < KV_TILE) warp::right_fill(att, att, filled, base_types::constants<float>::neg_infty());

                    tkp::online_softmax_step(att, max_vec, norm_vec, max_last_scaled, max_scaled, SCALE);
                    warp::copy(att_mma, att);
                    warp::mul_row(o_reg, o_reg, max_last_scaled);

                    warpgroup::mma_AB(o_reg, att_mma, v_smem[stage]);
                    warpgroup::mma_async_wait();  // before this warp releases the stage
                }
                __syncwarp();
                if (lane == 0) arrive(empty[stage]);
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
