// ChunkAttention decode kernels in ThunderKittens (H100, wgmma + TMA).
//
// One attention template serves both phases of ChunkAttention (Ye et al. 2024):
//   chunk-first    : an item = the stacked query rows (sequences x q-heads of one kv-head) of a shared chunk's
//                    contiguous row range, against a group of shared chunks with that same range;
//   sequence-first : an item = one sequence's q-heads of one kv-head against a segment of its private chunks.
// Both read K and V in place from the chunk pool (capacity, kv_heads, chunk_size, d_head): one (chunk, head) is one
// contiguous chunk_size x d_head block, i.e. one TMA tile. Each item writes a partial (o, lse) in fp32; a merge kernel
// combines the partials of every sequence by the LSE rule and writes o in the input dtype.
//
// Block layout: `NC` consumer warpgroups (64 query rows each) + one producer warp that streams the item's K/V chunks
// through a ring of `STAGES` shared-memory stages. Query rows are gathered (16-byte loads) into a swizzled shared tile
// because the rows of an item are not one rectangular box in q. A partial last chunk (len < chunk_size) is masked:
// scores of keys >= len become -inf, and the stale V rows >= len are zeroed in shared memory (P = 0 times a NaN left in
// the pool would still be NaN).
#include "kittens.cuh"
#include "launch_chunk.h"
#include "../common/tkp_softmax.cuh"
#include "../common/tkp_merge_rows.cuh"

#include <cstdio>
#include <cstring>
#include <cmath>

using namespace kittens;

namespace tkprefix_chunk {

constexpr int ROWS_PER_CONSUMER = 64;  // one wgmma M tile per consumer warpgroup

template<int D> struct softmax_consts {
    // scores are scaled by 1/sqrt(D) * log2(e) so that exp2 can be used; natural-log LSE is recovered with ln(2).
    static constexpr float scale_log2 = 1.44269504088896340736f / (D == 64 ? 8.0f : 11.31370849898476039f);
};

template<typename T, int D, int CS, int NC> struct attend_layout {
    static_assert(D == 64 || D == 128, "d_head must be 64 or 128");
    static_assert(CS == 64, "chunk_size 64 is the instantiated tile");
    static_assert(NC == 1 || NC == 2, "1 or 2 consumer warpgroups");
    using q_tile    = st<T, ROWS_PER_CONSUMER, D>;
    using kv_tile   = st<T, CS, D>;
    using kv_gl     = gl<T, -1, -1, -1, -1, kv_tile>;
    using att_fl    = rt_fl<16, CS>;           // per warp: 16 query rows x CS keys
    using att_mma   = rt<T, 16, CS>;
    using o_fl      = rt_fl<16, D>;
    using row_vec   = typename att_fl::col_vec;  // one value per query row
    // Stages: two blocks per SM when NC == 1 (sequence-first items are many and small), one when NC == 2.
    static constexpr int STAGES   = (NC == 1) ? (D == 128 ? 2 : 4) : (D == 128 ? 4 : 6);
    static constexpr int PRODUCER_WARP = NC * WARPGROUP_WARPS;
    static constexpr int THREADS  = (NC * WARPGROUP_WARPS + 1) * WARP_THREADS;
    static constexpr int MIN_BLOCKS = (NC == 1) ? 2 : 1;
    static constexpr size_t SMEM  = NC * sizeof(q_tile) + 2 * STAGES * sizeof(kv_tile) + 1024;  // + swizzle alignment

    struct globals {
        kv_gl k, v;                  // pool views (capacity, kv_heads, CS, D)
        const T *q;                  // (n_seqs, hq, D)
        const int32_t *items;        // (n_items, TKP_CHUNK_ITEM_INTS)
        const int32_t *cf_chunks;    // chunk ids of kind-0 items (full chunks)
        const int32_t *priv_chunks;  // chunk ids of kind-1 items (the plan's private_chunk) ...
        const int32_t *priv_lens;    // ... and their valid lengths (the plan's private_len, read live)
        float *part_o;               // (n_partial_rows, hq, D)
        float *part_lse;             // (n_partial_rows, hq)
        int hq, group;               // q-heads, q-heads per kv-head
        int hkv, n_items;            // kv-heads; items (work units = n_items * hkv)
    };
};

__device__ static inline void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ static inline void named_sync(int id, int threads) { asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(threads) : "memory"); }

template<typename T, int D, int CS, int NC>
__global__ __launch_bounds__(attend_layout<T, D, CS, NC>::THREADS, attend_layout<T, D, CS, NC>::MIN_BLOCKS)
void attend_kernel(const __grid_constant__ typename attend_layout<T, D, CS, NC>::globals g) {
    // Persistent: block b runs the work units u = b, b + gridDim.x, ... where unit u is (item u / hkv, kv-head u % hkv)
    // (items come longest first, so striding deals them out evenly). The producer's stage ring runs on across units,
    // so the next unit's chunks stream in while the consumers finish the current one.
    using L = attend_layout<T, D, CS, NC>;
    extern __shared__ int __shm[];
    tma_swizzle_allocator al((int*)&__shm[0]);
    typename L::q_tile  (&q_smem)[NC]       = al.allocate<typename L::q_tile, NC>();
    typename L::kv_tile (&k_smem)[L::STAGES] = al.allocate<typename L::kv_tile, L::STAGES>();
    typename L::kv_tile (&v_smem)[L::STAGES] = al.allocate<typename L::kv_tile, L::STAGES>();
    __shared__ semaphore k_arrived[L::STAGES], v_arrived[L::STAGES], compute_done[L::STAGES];

    const int warpid = kittens::warpid(), wg = warpid / WARPGROUP_WARPS;
    const int n_units = g.n_items * g.hkv;

    if (threadIdx.x == 0) {
        for (int s = 0; s < L::STAGES; s++) {
            init_semaphore(k_arrived[s], 0, 1);
            init_semaphore(v_arrived[s], 0, 1);
            init_semaphore(compute_done[s], NC, 0);  // every consumer warpgroup arrives once per chunk
        }
    }
    __syncthreads();

    if (warpid == L::PRODUCER_WARP) {
        // ---- producer: stream every unit's chunks through the stage ring ----
        if (laneid() == 0) {
            int it = 0;  // chunks issued by this block so far
            for (int u = blockIdx.x; u < n_units; u += gridDim.x) {
                const int32_t *item = g.items + (size_t)(u / g.hkv) * TKP_CHUNK_ITEM_INTS;
                const int kv_head = u % g.hkv, chunk_begin = item[3], n_chunks = item[4];
                const int32_t *chunk_ids = item[6] ? g.priv_chunks : g.cf_chunks;
                for (int i = 0; i < n_chunks; i++, it++) {
                    const int s = it % L::STAGES;
                    if (it >= L::STAGES) wait(compute_done[s], ((it / L::STAGES) - 1) & 1);
                    coord<typename L::kv_tile> idx = {chunk_ids[chunk_begin + i], kv_head, 0, 0};
                    tma::expect_bytes(k_arrived[s], sizeof(typename L::kv_tile));
                    tma::load_async(k_smem[s], g.k, idx, k_arrived[s]);
                    tma::expect_bytes(v_arrived[s], sizeof(typename L::kv_tile));
                    tma::load_async(v_smem[s], g.v, idx, v_arrived[s]);
                }
            }
        }
        return;
    }

    // ---- consumer warpgroup `wg`: query rows row_begin + wg*64 .. +63 of each unit's item ----
    const int tid = threadIdx.x % WARPGROUP_THREADS, lane = laneid();
    const int tile_row0 = wg * ROWS_PER_CONSUMER;  // first row of this warpgroup's tile within an item
    constexpr int VECS_PER_ROW = D / 8;            // 16-byte vectors per row
    constexpr float SCALE = softmax_consts<D>::scale_log2;
    const uint32_t q_base = static_cast<uint32_t>(__cvta_generic_to_shared(&q_smem[wg].data[0]));
    bool first = true;
    int it = 0;  // chunks consumed by this block so far (mirrors the producer's count)
    for (int u = blockIdx.x; u < n_units; u += gridDim.x) {
        const int32_t *item = g.items + (size_t)(u / g.hkv) * TKP_CHUNK_ITEM_INTS;
        const int kv_head = u % g.hkv;
        const int seq_begin = item[0], row_begin = item[1], n_rows = item[2];
        const int chunk_begin = item[3], n_chunks = item[4], out_base = item[5];
        const bool private_kind = item[6] != 0;
        const int n_active = min(NC, (n_rows + ROWS_PER_CONSUMER - 1) / ROWS_PER_CONSUMER);
        const int my_rows = min(ROWS_PER_CONSUMER, n_rows - tile_row0);  // <= 0: no rows here

        if (wg >= n_active) {  // no rows in this item: keep the ring's arrival count, touch nothing
            for (int i = 0; i < n_chunks; i++, it++) {
                const int s = it % L::STAGES;
                wait(k_arrived[s], (it / L::STAGES) & 1);
                wait(v_arrived[s], (it / L::STAGES) & 1);
                // every warp past the waits before the stage is freed: a parity wait cannot tell phase p from p + 2,
                // so a warp left a ring's length behind would wait forever (prefix.cu, session 17)
                named_sync(2 + wg, WARPGROUP_THREADS);
                if (warpgroup::laneid() == 0) arrive(compute_done[s], 1);
            }
            continue;
        }

        // gather the query rows (not one box in q: sequence-major, q-heads of this kv-head); rows past my_rows keep
        // the previous item's finite values (zero before the first item): a padded row only affects its own output.
        for (int v = tid; v < (first ? ROWS_PER_CONSUMER : my_rows) * VECS_PER_ROW; v += WARPGROUP_THREADS) {
            const int r = v / VECS_PER_ROW, c = (v % VECS_PER_ROW) * 8;
            uint4 val = make_uint4(0, 0, 0, 0);
            if (r < my_rows) {
                const int er  = row_begin + tile_row0 + r;  // row in the item's enumeration
                const int seq = seq_begin + er / g.group;
                const int qh  = kv_head * g.group + er % g.group;
                val = *reinterpret_cast<const uint4*>(g.q + ((size_t)seq * g.hq + qh) * D + c);
            }
            const uint32_t dst = L::q_tile::idx(q_base, {r, c});
            asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" :: "r"(dst), "r"(val.x), "r"(val.y), "r"(val.z), "r"(val.w) : "memory");
        }
        first = false;
        fence_async_shared();  // generic stores -> wgmma (async proxy)
        named_sync(2 + wg, WARPGROUP_THREADS);

        typename L::att_fl  att;
        typename L::att_mma att_mma;
        typename L::o_fl    o_reg;
        typename L::row_vec max_vec, norm_vec, max_last_scaled, max_scaled;
        warp::neg_infty(max_vec);
        warp::zero(norm_vec);
        warp::zero(o_reg);

        for (int i = 0; i < n_chunks; i++, it++) {
            const int s = it % L::STAGES, phase = (it / L::STAGES) & 1;
            const int len = private_kind ? g.priv_lens[chunk_begin + i] : CS;

            wait(k_arrived[s], phase);
            warpgroup::mm_ABt(att, q_smem[wg], k_smem[s]);
            warp::mul(max_last_scaled, max_vec, SCALE);
            warpgroup::mma_async_wait();
            if (len < CS) warp::right_fill(att, att, len, base_types::constants<float>::neg_infty());

            tkp::online_softmax_step(att, max_vec, norm_vec, max_last_scaled, max_scaled, SCALE);
            warp::copy(att_mma, att);
            warp::mul_row(o_reg, o_reg, max_last_scaled);

            wait(v_arrived[s], phase);
            if (len < CS) {
                // Zero V rows len..CS-1 (stale pool memory): consumer 0 writes, every active consumer waits.
                if (wg == 0) {
                    const uint32_t v_base = static_cast<uint32_t>(__cvta_generic_to_shared(&v_smem[s].data[0]));
                    for (int v = tid; v < (CS - len) * VECS_PER_ROW; v += WARPGROUP_THREADS) {
                        const int r = len + v / VECS_PER_ROW, c = (v % VECS_PER_ROW) * 8;
                        const uint32_t dst = L::kv_tile::idx(v_base, {r, c});
                        asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" :: "r"(dst), "r"(0) : "memory");
                    }
                    fence_async_shared();
                }
                // (a lone consumer uses its own barrier, so a barrier id never sees two thread counts at once)
                if (n_active == 1) named_sync(2 + wg, WARPGROUP_THREADS);
                else               named_sync(1, n_active * WARPGROUP_THREADS);
            }
            warpgroup::mma_AB(o_reg, att_mma, v_smem[s]);
            warpgroup::mma_async_wait();
            if (warpgroup::laneid() == 0) arrive(compute_done[s], 1);
        }

        // ---- finish: o /= sum, lse = max*scale*ln2 + ln(sum); write this warp's 16 rows ----
        warp::div_row(o_reg, o_reg, norm_vec);
        warp::mul(max_scaled, max_scaled, 0.69314718055994530942f);
        warp::log(norm_vec, norm_vec);
        warp::add(norm_vec, norm_vec, max_scaled);

        const int warp_row0 = tile_row0 + (warpid % WARPGROUP_WARPS) * 16;
        #pragma unroll
        for (int half_ = 0; half_ < 2; half_++) {  // rows lane/4 and lane/4 + 8
            const int r = warp_row0 + lane / 4 + 8 * half_;
            if (r >= n_rows) continue;
            const int er   = row_begin + r;
            const int prow = out_base + er / g.group;
            const int qh   = kv_head * g.group + er % g.group;
            float *dst = g.part_o + ((size_t)prow * g.hq + qh) * D;
            #pragma unroll
            for (int j = 0; j < D / 16; j++) {
                const int col = j * 16 + 2 * (lane % 4);
                *reinterpret_cast<float2*>(dst + col)     = o_reg.tiles[0][j].data[0 + half_];
                *reinterpret_cast<float2*>(dst + col + 8) = o_reg.tiles[0][j].data[2 + half_];
            }
            if (lane % 4 == 0) {
                g.part_lse[(size_t)prow * g.hq + qh] = half_ == 0 ? norm_vec[0][0].x : norm_vec[0][0].y;
            }
        }
    }
}

// ---- merge: kernels/common/tkp_merge_rows.cuh (one warp per (sequence, q-head)) ----

// ---- host side ----
static thread_local char g_error[512];
static const char *check_cuda(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return nullptr;
    std::snprintf(g_error, sizeof g_error, "%s: %s", what, cudaGetErrorString(e));
    return g_error;
}

template<typename T, int D, int NC>
static const char *launch_attend(const void *q, const void *k_pool, const void *v_pool, int cap, int hkv, int hq,
                                 const int32_t *items, int n_items, const int32_t *cf_chunks,
                                 const int32_t *priv_chunks, const int32_t *priv_lens, float *po, float *pl,
                                 int max_blocks, cudaStream_t stream) {
    using L = attend_layout<T, D, 64, NC>;
    typename L::kv_gl kg{(T*)k_pool, (unsigned)cap, (unsigned)hkv, 64u, (unsigned)D};
    typename L::kv_gl vg{(T*)v_pool, (unsigned)cap, (unsigned)hkv, 64u, (unsigned)D};
    typename L::globals g{kg, vg, (const T*)q, items, cf_chunks, priv_chunks, priv_lens, po, pl, hq, hq / hkv,
                          hkv, n_items};
    auto kernel = attend_kernel<T, D, 64, NC>;
    static int resident = 0;  // blocks of this instantiation that fit on the whole GPU (computed once)
    if (resident == 0) {
        int dev = 0, sms = 0, per_sm = 0;
        if (const char *err = check_cuda(cudaGetDevice(&dev), "cudaGetDevice")) return err;
        if (const char *err = check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                              (int)L::SMEM), "cudaFuncSetAttribute(attend_kernel)")) return err;
        if (const char *err = check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev),
                                         "cudaDeviceGetAttribute")) return err;
        if (const char *err = check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, L::THREADS, L::SMEM),
                                         "cudaOccupancyMaxActiveBlocksPerMultiprocessor")) return err;
        if (per_sm < 1) return "tkp_chunk: attend_kernel does not fit on an SM";
        resident = sms * per_sm;
    }
    const long long units = (long long)n_items * hkv;
    long long blocks = max_blocks > 0 ? (long long)max_blocks : (long long)resident;
    if (blocks > units) blocks = units;
    if (blocks > 0x7fffffffLL) blocks = 0x7fffffffLL;
    kernel<<<dim3((unsigned)blocks), L::THREADS, L::SMEM, stream>>>(g);
    return check_cuda(cudaGetLastError(), "attend_kernel launch");
}

}  // namespace tkprefix_chunk

using namespace tkprefix_chunk;

extern "C" const char *tkp_chunk_attend(int dtype, int d_head, int chunk_size, int consumers,
                                const void *q, const void *k_pool, const void *v_pool,
                                int capacity_chunks, int n_kv_heads, int n_q_heads,
                                const int32_t *items, int n_items, const int32_t *cf_chunks,
                                const int32_t *priv_chunks, const int32_t *priv_lens, float *part_o,
                                float *part_lse, int max_blocks, void *stream) {
    if (chunk_size != 64) return "tkp_chunk: chunk_size must be 64";
    if (d_head != 64 && d_head != 128) return "tkp_chunk: d_head must be 64 or 128";
    if (consumers != 1 && consumers != 2) return "tkp_chunk: consumers must be 1 or 2";
    if (dtype != TKP_DTYPE_BF16 && dtype != TKP_DTYPE_FP16) return "tkp_chunk: dtype must be bf16 or fp16";
    if (n_kv_heads <= 0 || n_q_heads <= 0 || n_q_heads % n_kv_heads != 0) return "tkp_chunk: n_q_heads must be a positive multiple of n_kv_heads";
    if (capacity_chunks <= 0) return "tkp_chunk: capacity_chunks must be positive";
    if (n_items < 0) return "tkp_chunk: n_items must be >= 0";
    if (n_items == 0) return nullptr;
    if (!q || !k_pool || !v_pool || !items || !part_o || !part_lse) return "tkp_chunk: null pointer argument";
    cudaStream_t s = (cudaStream_t)stream;
    const bool b = dtype == TKP_DTYPE_BF16;
    #define TKP_ATTEND(TT, DD, NN) launch_attend<TT, DD, NN>(q, k_pool, v_pool, capacity_chunks, n_kv_heads, n_q_heads, items, n_items, cf_chunks, priv_chunks, priv_lens, part_o, part_lse, max_blocks, s)
    if (d_head == 128) {
        if (consumers == 1) return b ? TKP_ATTEND(bf16, 128, 1) : TKP_ATTEND(half, 128, 1);
        return b ? TKP_ATTEND(bf16, 128, 2) : TKP_ATTEND(half, 128, 2);
    }
    if (consumers == 1) return b ? TKP_ATTEND(bf16, 64, 1) : TKP_ATTEND(half, 64, 1);
    return b ? TKP_ATTEND(bf16, 64, 2) : TKP_ATTEND(half, 64, 2);
    #undef TKP_ATTEND
}

extern "C" const char *tkp_chunk_merge(int dtype, int d_head, int n_seqs, int n_q_heads,
                               const float *part_o, const float *part_lse,
                               const int32_t *merge_offset, const int32_t *merge_rows,
                               void *o, float *lse, void *stream) {
    if (d_head != 64 && d_head != 128) return "tkp_chunk: d_head must be 64 or 128";
    if (dtype != TKP_DTYPE_BF16 && dtype != TKP_DTYPE_FP16) return "tkp_chunk: dtype must be bf16 or fp16";
    if (n_seqs < 0 || n_q_heads <= 0) return "tkp_chunk: n_seqs must be >= 0 and n_q_heads > 0";
    if (n_seqs == 0) return nullptr;
    if (!merge_offset || !o) return "tkp_chunk: null pointer argument";
    cudaStream_t s = (cudaStream_t)stream;
    return check_cuda(tkp::launch_merge_rows<false>(dtype == TKP_DTYPE_BF16, d_head, n_seqs, n_q_heads, part_o, part_lse,
                                             merge_offset, merge_rows, o, lse, s), "merge_kernel launch");
}
