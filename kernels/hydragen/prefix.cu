// kernels/hydragen/prefix.cu -- Hydragen's prefix attention in ThunderKittens (TMA + wgmma, H100).
//
// For one (prefix row bp, kv-head h) the queries of every sequence that uses prefix bp, every query position and every
// q-head of kv-head h are stacked into one matrix of M = (B/Bp)*Nq*(Hq/Hkv) rows and attended, non-causally, against
// the P keys of that prefix: a matrix-matrix product instead of B matrix-vector products.
//
//   grid   = (ceil(M/(64*CW)) * Bp * Hkv, n_splits)      blockIdx.y splits the key range (merged later by LSE)
//   block  = CW (2 or 3) consumer warpgroups (64 query rows each) + 1 producer warpgroup (TMA loads of 128-key K/V
//            tiles, or 176-key ones for short compute-bound items); 3 as in TK's mha_h100, 2 where 128-row blocks
//            fill the SMs in fuller waves
//
// Differences from TK's mha_h100 forward, on purpose:
//   * any M and P: query rows past M are zero-filled and never stored; keys past P come zero-filled from TMA and their
//     scores are set to -inf; every output row is written.
//   * K/V are read in place from the (Bp, P, Hkv, D) cache through 5-D tensor maps with the cache's own strides (no
//     per-step transpose); query rows are gathered by address (q may have any Hq/Hkv ratio, any strides).
//   * LSE is the natural-log log-sum-exp (TK's kernel stores -sqrt(D)*LSE).
//   * the output is either the final o (input dtype) or, when the key range is split, fp32 partial slots.
//   * DEC: a fourth warpgroup runs the suffix decode in the same blocks (prefix_decode.cuh), both into fp32 slots.
#include "kittens.cuh"
#include <cuda.h>
#include "../launch.h"
#include "../common/tkp_common.cuh"
#include "../common/tkp_softmax.cuh"
#include "prefix_decode.cuh"

using namespace kittens;

namespace tkp {
namespace prefix {

// CW = consumer warpgroups per block (3 like TK's mha_h100, or 2: 128-row blocks fill the 132 SMs in fewer,
// fuller waves for some shapes; the host picks per shape).
// + the producer warpgroup (+ DEC: the decode warpgroup)
template<int CW, bool DEC = false> constexpr int NUM_THREADS = (CW + 1 + DEC) * WARPGROUP_THREADS;
// setmaxnreg only moves registers inside the block's allocation (NUM_THREADS x the compiled count, which
// __launch_bounds__(.., 1) caps at 128 for CW=3 and 168 for CW=2): (CW*CONSUMER + PRODUCER) * 128 must fit in it, or
// the consumers' increase waits forever. The launcher checks this against the compiled count.
// DEC (512 threads, 128 registers each): 2 x 200 + 24 + 88 = 4 x 128; the decode warpgroup's code needs 86 (its
// SASS under nvcc 13.0), the consumers' serial loop 181 of 184 at a first try.
template<int CW, bool DEC = false> constexpr int CONSUMER_REGS = DEC ? 200 : CW == 3 ? 160 : 240;
constexpr int PRODUCER_REGS = 24;
constexpr int DECODE_REGS = 88;
constexpr int Q_ROWS  = 64;                                                  // query rows per consumer warpgroup
constexpr int KV_ROWS = 128;                                                 // keys per pipeline stage
// Short compute-bound items (fewer than 12 tiles of 128, so the serial loop) take 176-key tiles, FlashAttention-3's:
// fewer loop steps (c3 B512 32/8 P1024: 6 instead of 8), 5 % faster (data/h200/dev/s18_prefix_stages, s19_prefix_wide).
// D 128, 2 consumer warpgroups, one split only; the overlapped loop loses 7-20 % with them (registers).
constexpr int KV_ROWS_WIDE = 176;
// K/V pipeline depth. The serial loop, which also streams memory-bound prefixes, goes as deep as 227 KB of shared
// memory allows (D=128, CW=2: 32 KB of q + 3 x 64 KB of K/V; 2 x 88 KB with 176-key tiles). The overlapped loop
// (compute-bound items) runs 2: it measured 2-4 % faster than 3 on c3's suffix-0 shapes (s18_prefix_stages).
// DEC: 2, to leave room for the decode warpgroup's 41 KB.
template<int D, int CW, bool OVERLAP, int KV, bool DEC = false>
constexpr int STAGES = DEC ? 2 : (D == 64) ? 4 : (CW == 2 && !OVERLAP && KV == KV_ROWS ? 3 : 2);

template<typename T, int D, int CW, bool OVERLAP, int KV, bool DEC = false> struct layout {
    static constexpr int BLOCK_ROWS = CW * Q_ROWS;        // query rows per block
    using q_tile     = st<T, Q_ROWS, D>;                  // one consumer warpgroup's queries
    using kv_tile    = st<T, KV, D>;                      // KV keys (or values)
    using lse_vec    = col_vec<st_fl<Q_ROWS, D>>;         // per-row LSE, staged for the scattered store
    using att_tile   = rt_fl<16, KV>;                     // one warp's 16 rows x KV scores
    using att_mma    = rt<T, 16, KV>;                     // the same, as the A operand of P @ V
    using o_tile     = rt_fl<16, D>;                      // one warp's 16 output rows
    using row_vec    = col_vec<att_tile>;                 // per-row running max / sum
    // The overlapped loop double-buffers q: the next item's rows load from this item's start, not in its last tile
    // (1-2 % faster, data/h200/dev/s20_softmax_overlap). The serial loop, 3 K/V stages deep, has no room for it.
    static constexpr int Q_BUFS = OVERLAP ? 2 : 1;
    struct decode_smem { alignas(16) unsigned char bytes[tile16::layout<T, D>::BYTES]; };   // DEC only
    static constexpr size_t smem_bytes =
        1024 /* alignment slack */ + Q_BUFS * CW * sizeof(q_tile) +
        2 * STAGES<D, CW, OVERLAP, KV, DEC> * sizeof(kv_tile) + 1024 /* the lse vectors, 1024-aligned */ +
        (DEC ? (sizeof(decode_smem) + 1023) / 1024 * 1024 : 0);
};

struct globals {
    CUtensorMap k_map, v_map;     // 5-D: (64 elements, key, D/64 column chunks, kv-head, prefix row)
    const void *q;                // (B, Nq, Hq, D) by strides
    int64_t q_sb, q_sn, q_sh;
    tkp_out out;
    int Nq, Hq, Hkv, P;
    int G;                        // sequences per prefix row, B / Bp
    int R;                        // q-heads per kv-head, Hq / Hkv
    int M;                        // stacked query rows per (prefix row, kv-head), G*Nq*R
    int m_blocks;                 // ceil(M / (CW*64))
    int n_tiles;                  // ceil(P / KV)
    int tiles_per_split;
    int groups;                   // Bp * Hkv
    int n_splits;
    int pingpong;                 // CW = 2 only: alternate the warpgroups' Q K^T issue
    prefix_decode::unique_part u; // DEC only: the suffix decode's part
};

// Stacked row m of (prefix row bp, kv-head h) -> sequence b, position n, q-head hq.
struct row_coord { int b, n, hq; };
__device__ __forceinline__ row_coord stacked_row(const globals &g, int bp, int h, int m) {
    const int bn = m / g.R, r = m - bn * g.R;
    const int bl = bn / g.Nq, n = bn - bl * g.Nq;
    return {bp * g.G + bl, n, h * g.R + r};
}
__device__ __forceinline__ int64_t out_row(const globals &g, row_coord c) {
    return ((int64_t)c.b * g.Nq + c.n) * g.Hq + c.hq;
}

// TMA load of one 128-key tile of (prefix row bp, kv-head h), starting at key `key0`, through our own tensor map.
template<typename ST>
__device__ __forceinline__ void load_kv_tile(ST &dst, const CUtensorMap *map, int key0, int h, int bp, semaphore &bar) {
    const uint64_t map_ptr = reinterpret_cast<uint64_t>(map);
    const uint32_t bar_ptr = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
    const uint32_t dst_ptr = static_cast<uint32_t>(__cvta_generic_to_shared(&dst));
    asm volatile(
        "cp.async.bulk.tensor.5d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%3, %4, %5, %6, %7}], [%2];"
        :
        : "r"(dst_ptr), "l"(map_ptr), "r"(bar_ptr), "n"(0), "r"(key0), "r"(0), "r"(h), "r"(bp)
        : "memory");
}

// Start gathering one consumer warpgroup's 64 query rows into its swizzled tile: 16-byte cp.async copies, so no
// registers are held and the copies can run under other work; rows past M are zero-filled. q_ready waits for them.
template<typename T, int D>
__device__ __forceinline__ void load_q_async(st<T, Q_ROWS, D> &dst, const globals &g, int bp, int h, int row0) {
    using q_tile = st<T, Q_ROWS, D>;
    constexpr int ELEMS_PER_LOAD = 16 / sizeof(T);
    constexpr int LOADS_PER_ROW  = D / ELEMS_PER_LOAD;
    constexpr int LOADS          = Q_ROWS * LOADS_PER_ROW / WARPGROUP_THREADS;
    const uint32_t dst_ptr = static_cast<uint32_t>(__cvta_generic_to_shared(&dst.data[0]));
    const T *q = static_cast<const T *>(g.q);
    #pragma unroll
    for (int i = 0; i < LOADS; i++) {
        const int idx = i * WARPGROUP_THREADS + warpgroup::laneid();
        const int row = idx / LOADS_PER_ROW, col = (idx % LOADS_PER_ROW) * ELEMS_PER_LOAD;
        const bool in = row0 + row < g.M;
        const T *src = q;
        if (in) {
            const row_coord c = stacked_row(g, bp, h, row0 + row);
            src = q + c.b * g.q_sb + c.n * g.q_sn + c.hq * g.q_sh + col;
        }
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                     :: "r"(q_tile::idx(dst_ptr, {row, col})), "l"(src), "r"(in ? 16 : 0) : "memory");
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// This thread's copies done, made visible to wgmma (async proxy), then to the whole warpgroup.
__device__ __forceinline__ void q_ready(int wg) {
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    warpgroup::sync(wg + 1);
}

// Two consumer warpgroups taking turns at issuing their wgmmas, through named barriers TURN_BAR + wg (256 threads):
// a warpgroup waits for its turn, issues, and passes the turn to the other (FlashAttention-3's warp-scheduler barrier).
constexpr int TURN_BAR = 4;   // ids 1..3 are the per-warpgroup syncs
__device__ __forceinline__ void turn_wait(int wg) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(TURN_BAR + wg), "n"(2 * WARPGROUP_THREADS));
}
__device__ __forceinline__ void turn_pass(int to_wg) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(TURN_BAR + to_wg), "n"(2 * WARPGROUP_THREADS));
}

// Store one warp's 16 rows of o (fp32 registers) to their scattered output rows, as U (the input dtype or float).
template<typename U, int D>
__device__ __forceinline__ void store_o(const rt_fl<16, D> &o, const globals &g, int bp, int h, int row0, U *base) {
    using U2 = typename base_types::packing<U>::packed_type;
    const int lane = laneid();
    #pragma unroll
    for (int half = 0; half < 2; half++) {
        const int m = row0 + warpgroup::warpid() * 16 + lane / 4 + 8 * half;
        if (m >= g.M) continue;
        U *dst = base + out_row(g, stacked_row(g, bp, h, m)) * D;
        #pragma unroll
        for (int j = 0; j < rt_fl<16, D>::width; j++) {
            const int col = j * 16 + 2 * (lane % 4);
            *reinterpret_cast<U2 *>(dst + col)     = base_types::convertor<U2, float2>::convert(o.tiles[0][j].data[half]);
            *reinterpret_cast<U2 *>(dst + col + 8) = base_types::convertor<U2, float2>::convert(o.tiles[0][j].data[half + 2]);
        }
    }
}

// Diagnostic: per-item timestamps (%globaltimer, ns) of warpgroup 0's thread 0 into a buffer set by
// tkp_prefix_set_trace (scripts/device/prefix_trace.py); off (nullptr) by default. Session 10 measured a form of this
// kernel without these hooks 4-8 % slower on 128-row blocks (NOTES.md); keep them until that is understood.
__device__ unsigned long long *g_prefix_trace = nullptr;
__device__ __forceinline__ unsigned long long now_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ unsigned smid() {
    unsigned s;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
    return s;
}

// The work item of flat index w: (query row block, prefix row, kv-head, key split) and its tile range.
struct work_item { int m_block, bp, h, split, tile_begin, n_iters; };
__device__ __forceinline__ work_item item_of(const globals &g, int w) {
    const int blocks_x = g.m_blocks * g.groups;
    const int x = w % blocks_x, split = w / blocks_x;
    const int group = x / g.m_blocks;
    const int tile_begin = split * g.tiles_per_split;
    return {x % g.m_blocks, group / g.Hkv, group % g.Hkv, split, tile_begin,
            min(g.tiles_per_split, g.n_tiles - tile_begin)};   // >= 1 (the host makes no empty split)
}

// Grid: one block per work item, or fewer blocks (persistent) that take items w, w + gridDim.x, ...; the K/V pipeline
// then runs on across items, so the next item's first tiles load during this one's last tiles and epilogue.
// OVERLAP (CW = 2): each warpgroup issues tile t's Q K^T and tile t-1's P V together, and the two warpgroups take
// turns at issuing (FlashAttention-3's order and warp-scheduler barrier); the K and V stages are freed separately.
// The key mask runs in a separate last step: with its branch in the loop, ptxas waited for P V right after S_t;
// without it, after most of t's row max. Turns and mask step together are 2-3 % faster on c3's compute-bound
// prefixes; either alone, or masking by selects, is slower (data/h200/dev/s21_overlap_pingpong).
template<typename T, int D, int CW, bool OVERLAP, int KV, bool DEC = false>
__global__ __launch_bounds__(NUM_THREADS<CW, DEC>, 1)
void prefix_kernel(const __grid_constant__ globals g) {
    using L = layout<T, D, CW, OVERLAP, KV, DEC>;
    constexpr int CONSUMER_WARPGROUPS = CW, PRODUCER_WG = CW, DECODE_WG = CW + 1;
    constexpr int S = STAGES<D, CW, OVERLAP, KV, DEC>;
    static_assert(L::smem_bytes + 4 * S * sizeof(semaphore) <= MAX_SHARED_MEMORY, "shared memory");
    static_assert(!OVERLAP || CW == 2, "the overlapped loop needs CW = 2's registers");
    static_assert(KV == KV_ROWS || (CW == 2 && !OVERLAP), "wide tiles: the serial loop of 2-consumer blocks");
    static_assert(!DEC || (CW == 2 && !OVERLAP && KV == KV_ROWS), "DEC: the serial loop of 2-consumer blocks");
    constexpr float SCALE = softmax_scale_log2<D>();   // 1/sqrt(D) * log2(e): scores in base 2
    // The decode (or merge) after this kernel may be scheduled now: its blocks take the SMs this grid's blocks leave
    // (a prefix block holds an SM's registers) and wait for this grid before they read its slots (tkp_common.cuh).
    allow_dependents();

    extern __shared__ int __shm[];
    tma_swizzle_allocator al((int *)&__shm[0]);
    typename L::q_tile  (&q_smem)[L::Q_BUFS][CONSUMER_WARPGROUPS] =
        al.allocate<typename L::q_tile, L::Q_BUFS, CONSUMER_WARPGROUPS>();
    typename L::kv_tile (&k_smem)[S]                     = al.allocate<typename L::kv_tile, S>();
    typename L::kv_tile (&v_smem)[S]                     = al.allocate<typename L::kv_tile, S>();
    typename L::lse_vec (&lse_smem)[CONSUMER_WARPGROUPS] = al.allocate<typename L::lse_vec, CONSUMER_WARPGROUPS>();
    unsigned char *decode_smem = nullptr;
    if constexpr (DEC) decode_smem = al.allocate<typename L::decode_smem>().bytes;
    __shared__ semaphore k_arrived[S], v_arrived[S], k_free[S], v_free[S];
    const int wg = warpgroup::groupid();
    const int n_items = g.m_blocks * g.groups * g.n_splits;

    if (threadIdx.x == 0) {
        #pragma unroll
        for (int s = 0; s < S; s++) {
            init_semaphore(k_arrived[s], 0, 1);
            init_semaphore(v_arrived[s], 0, 1);
            init_semaphore(k_free[s], CONSUMER_WARPGROUPS, 0);
            init_semaphore(v_free[s], CONSUMER_WARPGROUPS, 0);
        }
    }
    __syncthreads();

    if (DEC && wg == DECODE_WG) {   // (DEC a constant: without it the branch and its test compile away)
        // ================================================================ DEC: the suffix decode (prefix_decode.cuh)
        if constexpr (DEC) {
            warpgroup::decrease_registers<DECODE_REGS>();
            prefix_decode::run<T, D>(g.u, g.q, decode_smem);
        }
    } else if (wg == PRODUCER_WG) {
        // ================================================================ producer: K/V tiles through TMA
        warpgroup::decrease_registers<PRODUCER_REGS>();
        if (warpgroup::laneid() == 0) {
            int t = 0;   // tiles loaded by this block: stage t % S, its (t / S)-th use
            for (int w = blockIdx.x; w < n_items; w += gridDim.x) {
                const work_item item = item_of(g, w);
                for (int it = 0; it < item.n_iters; it++, t++) {
                    const int s = t % S;
                    const int key0 = (item.tile_begin + it) * KV;
                    if (t >= S) wait(k_free[s], (t / S - 1) % 2);   // stage free again?
                    tma::expect_bytes(k_arrived[s], sizeof(typename L::kv_tile));
                    load_kv_tile(k_smem[s], &g.k_map, key0, item.h, item.bp, k_arrived[s]);
                    if (t >= S) wait(v_free[s], (t / S - 1) % 2);
                    tma::expect_bytes(v_arrived[s], sizeof(typename L::kv_tile));
                    load_kv_tile(v_smem[s], &g.v_map, key0, item.h, item.bp, v_arrived[s]);
                }
            }
        }
    } else {
        // ================================================================ consumers: online softmax with wgmma
        warpgroup::increase_registers<CONSUMER_REGS<CW, DEC>>();
        typename L::att_tile att;
        typename L::att_mma  att_mma;
        typename L::o_tile   o_reg;
        typename L::row_vec  max_vec, norm_vec, max_vec_last_scaled, max_vec_scaled;
        const bool lane0 = warpgroup::laneid() == 0;
        unsigned long long *trace = threadIdx.x == 0 ? g_prefix_trace : nullptr;
        int t = 0;   // tiles consumed by this block, as the producer counts them
        // this warpgroup's query rows of item w (zero-filled past M) into q buffer qb. Item w + gridDim.x's: in the
        // overlapped loop into the other buffer at w's start; in the serial loop during w's last tile, once its last
        // Q K^T has read q_smem
        int qb = 0;
        const auto load_q = [&](int w, int buf) {
            const work_item next = item_of(g, w);
            load_q_async<T, D>(q_smem[buf][wg], g, next.bp, next.h, next.m_block * L::BLOCK_ROWS + wg * Q_ROWS);
        };
        if (blockIdx.x < n_items) load_q(blockIdx.x, 0);
        // The overlapped loop's turns run as one chain across the block's items; warpgroup 0 opens it. Warpgroup 1's
        // last pass is never taken: a block's barriers are dropped when it exits.
        if (OVERLAP && wg == 0) turn_pass(0);

        for (int w = blockIdx.x; w < n_items; w += gridDim.x) {
            const bool has_next = w + gridDim.x < n_items;
            const work_item item = item_of(g, w);
            const int row0 = item.m_block * L::BLOCK_ROWS + wg * Q_ROWS;   // first stacked row of this warpgroup
            const bool active = row0 < g.M;                       // an idle warpgroup only keeps the pipeline turning
            if (trace) { trace[w * 8 + 0] = smid(); trace[w * 8 + 1] = now_ns(); }
            warp::neg_infty(max_vec);
            warp::zero(norm_vec);
            warp::zero(o_reg);
            q_ready(wg);
            if constexpr (OVERLAP) {   // the other buffer was last read by the previous item's Q K^T, complete
                if (has_next) load_q(w + gridDim.x, qb ^ 1);
            }
            const int first_valid = g.P - item.tile_begin * KV;        // keys past P (zero-filled by TMA) get -inf
            if (trace) {
                trace[w * 8 + 2] = now_ns(); wait(k_arrived[t % S], (t / S) % 2); trace[w * 8 + 3] = now_ns();
            }

            if constexpr (OVERLAP) {
                // No branch around a wgmma here (ptxas would serialize them): an idle warpgroup computes on its
                // zero-filled queries and stores nothing. The item's first tile is peeled off the loop.
                {
                    const int s = t % S;
                    wait(k_arrived[s], (t / S) % 2);
                    turn_wait(wg);
                    warpgroup::mm_ABt(att, q_smem[qb][wg], k_smem[s]);
                    turn_pass(1 - wg);
                    warpgroup::mma_async_wait();
                    if (lane0) arrive(k_free[s], 1);
                    if (first_valid < KV)
                        warp::right_fill(att, att, first_valid, base_types::constants<float>::neg_infty());
                    warp::mul(max_vec_last_scaled, max_vec, SCALE);
                    tkp::online_softmax_step(att, max_vec, norm_vec, max_vec_last_scaled, max_vec_scaled, SCALE);
                    warp::copy(att_mma, att);
                    t++;
                }
                const auto step = [&](int it, auto masked) {
                    const int s = t % S, sp = (t - 1) % S;
                    wait(k_arrived[s], (t / S) % 2);
                    warp::mul(max_vec_last_scaled, max_vec, SCALE);
                    turn_wait(wg);
                    warpgroup::mm_ABt(att, q_smem[qb][wg], k_smem[s]);             // S_t = Q K_t^T
                    wait(v_arrived[sp], ((t - 1) / S) % 2);
                    warpgroup::mma_AB(o_reg, att_mma, v_smem[sp]);                // O += P_{t-1} V_{t-1}
                    turn_pass(1 - wg);
                    warpgroup::mma_async_wait<1>();                                // S_t done, P V in flight
                    if (lane0) arrive(k_free[s], 1);
                    if constexpr (decltype(masked)::value)   // only the tile that P cuts: no branch in the loop
                        warp::right_fill(att, att, first_valid - it * KV, base_types::constants<float>::neg_infty());
                    tkp::online_softmax_step(att, max_vec, norm_vec, max_vec_last_scaled, max_vec_scaled, SCALE);
                    warpgroup::mma_async_wait();                                   // P_{t-1} V_{t-1} done
                    if (lane0) arrive(v_free[sp], 1);
                    warp::mul_row(o_reg, o_reg, max_vec_last_scaled);
                    warp::copy(att_mma, att);
                };
                // tiles 1 .. n_full-1 need no mask; the last one does when P ends inside it
                const int n_full = first_valid >= item.n_iters * KV ? item.n_iters : item.n_iters - 1;
                for (int it = 1; it < n_full; it++, t++) step(it, std::false_type{});
                if (n_full < item.n_iters && item.n_iters > 1) { step(item.n_iters - 1, std::true_type{}); t++; }
                const int sl = (t - 1) % S;                                        // the item's last tile
                wait(v_arrived[sl], ((t - 1) / S) % 2);
                warpgroup::mma_AB(o_reg, att_mma, v_smem[sl]);
                warpgroup::mma_async_wait();
                if (lane0) arrive(v_free[sl], 1);
            } else {
                // Ping-pong (CW = 2, both warpgroups active): the two warpgroups take turns issuing Q K^T (named
                // barriers, turn_wait / turn_pass), which staggers them by half an iteration so that one's softmax
                // overlaps the other's matrix products. Warpgroup 1 opens the first turn for warpgroup 0 and skips
                // its last hand-over, so every barrier phase is matched within the item.
                const bool pingpong = CW == 2 && g.pingpong && (item.m_block * L::BLOCK_ROWS + Q_ROWS < g.M);
                if (pingpong && wg == 1) turn_pass(0);
                for (int it = 0; it < item.n_iters; it++, t++) {
                    const int s = t % S, phase = (t / S) % 2;
#ifdef TKP_FAULT_STALL_IDLE_NS   // test hook (data/h200/dev/s17_idle_warp_hang): one idle warp arrives late
                    if (!active && warpgroup::warpid() == 1 && it == 2 && w == blockIdx.x) {
                        for (const auto t0 = now_ns(); now_ns() - t0 < TKP_FAULT_STALL_IDLE_NS;) {}
                    }
#endif
                    wait(k_arrived[s], phase);
                    if (!active) {
                        // Free the stage only once every warp of this warpgroup has passed its waits (an active
                        // warpgroup's wgmma gives it that). A parity wait cannot tell phase p from p + 2: a warp
                        // that fell S tiles behind would wait forever, and the block with it (session 17).
                        wait(v_arrived[s], phase);
                        warpgroup::sync(wg + 1);
                    } else {
                        // S = Q K^T
                        if (pingpong) turn_wait(wg);
                        warpgroup::mm_ABt(att, q_smem[0][wg], k_smem[s]);
                        if (pingpong && (wg == 0 || it + 1 < item.n_iters))
                            turn_pass(1 - wg);
                        warp::mul(max_vec_last_scaled, max_vec, SCALE);
                        warpgroup::mma_async_wait();
                        if (it == item.n_iters - 1 && has_next) load_q(w + gridDim.x, 0);
                        const int valid = first_valid - it * KV;
                        if (valid < KV) warp::right_fill(att, att, valid, base_types::constants<float>::neg_infty());
                        // online softmax, base 2
                        tkp::online_softmax_step(att, max_vec, norm_vec, max_vec_last_scaled, max_vec_scaled, SCALE);
                        warp::copy(att_mma, att);
                        warp::mul_row(o_reg, o_reg, max_vec_last_scaled);
                        // O += P V
                        wait(v_arrived[s], phase);
                        warpgroup::mma_AB(o_reg, att_mma, v_smem[s]);
                        warpgroup::mma_async_wait();
                    }
                    if (lane0) { arrive(k_free[s], 1); arrive(v_free[s], 1); }
                    if (!active && it == item.n_iters - 1 && has_next) load_q(w + gridDim.x, 0);
                }
            }

            if (trace) trace[w * 8 + 4] = now_ns();
            if (active) {
                // o = O / l ; lse = ln(l) + m * ln 2   (m in base 2, already scaled)
                warp::div_row(o_reg, o_reg, norm_vec);
                warp::log(norm_vec, norm_vec);
                const float ln2 = LN2;   // a local: TK's ops take references
                warp::mul(max_vec_scaled, max_vec_scaled, ln2);
                warp::add(norm_vec, norm_vec, max_vec_scaled);
                warpgroup::store(lse_smem[wg], norm_vec);

                const bool partial = g.out.o_dtype == TKP_FP32;
                const int64_t slot = item.split;
                if (trace) trace[w * 8 + 6] = now_ns();
                if (partial) store_o<float, D>(o_reg, g, item.bp, item.h, row0,
                                               static_cast<float *>(g.out.o) + slot * g.out.o_slot_stride);
                else         store_o<T, D>(o_reg, g, item.bp, item.h, row0,
                                           static_cast<T *>(g.out.o) + slot * g.out.o_slot_stride);
                if (trace) trace[w * 8 + 7] = now_ns();

                warpgroup::sync(wg + 1);
                float *lse = g.out.lse + slot * g.out.lse_slot_stride;
                for (int i = warpgroup::laneid(); i < Q_ROWS; i += WARPGROUP_THREADS) {
                    if (row0 + i < g.M)
                        lse[out_row(g, stacked_row(g, item.bp, item.h, row0 + i))] = lse_smem[wg].data[i];
                }
                warpgroup::sync(wg + 1);   // lse_smem is read before the next item writes it
            }
            if (trace) trace[w * 8 + 5] = now_ns();
            qb ^= L::Q_BUFS - 1;   // the buffer the next item's q went to (the serial loop's one buffer: 0)
        }
    }
}

// ---------------------------------------------------------------------------------------------------- host side
template<typename T> constexpr CUtensorMapDataType tma_format() {
    return std::is_same_v<T, bf16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
}

// 5-D map over a (Bp, P, Hkv, D) cache with strides in elements (D stride 1): box = KV keys x D of one (bp, h).
template<typename T, int D, int KV>
const char *make_kv_map(CUtensorMap *map, const void *base, int Bp, int P, int Hkv, int64_t sb, int64_t sp, int64_t sh) {
    constexpr int SWIZZLE_ELEMS = 128 / sizeof(T);                   // 128-byte swizzle: 64 bf16/fp16 per chunk
    const uint64_t es = sizeof(T);
    uint64_t shape[5]   = {SWIZZLE_ELEMS, (uint64_t)P, D / SWIZZLE_ELEMS, (uint64_t)Hkv, (uint64_t)Bp};
    uint64_t stride[4]  = {sp * es, 128, sh * es, sb * es};          // bytes, for dims 1..4
    uint32_t box[5]     = {SWIZZLE_ELEMS, KV, D / SWIZZLE_ELEMS, 1, 1};
    uint32_t estride[5] = {1, 1, 1, 1, 1};
    if ((reinterpret_cast<uintptr_t>(base) & 15) != 0) return arg_error("prefix k/v: base pointer must be 16-byte aligned");
    for (int i = 0; i < 4; i++)
        if (stride[i] % 16 != 0 || stride[i] >= (1ull << 40))
            return arg_error("prefix k/v: strides (batch, token, head) must be multiples of 16 bytes and < 2^40");
    CUresult r = cuTensorMapEncodeTiled(map, tma_format<T>(), 5, const_cast<void *>(base), shape, stride, box, estride,
                                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        const char *msg = nullptr;
        cuGetErrorString(r, &msg);
        static thread_local char buf[256];
        snprintf(buf, sizeof(buf), "prefix k/v: cuTensorMapEncodeTiled failed: %s", msg ? msg : "unknown error");
        return buf;
    }
    return nullptr;
}

template<typename T, int D, int CW, bool OVERLAP, int KV = KV_ROWS, bool DEC = false>
const char *launch(const void *q, int64_t q_sb, int64_t q_sn, int64_t q_sh,
                   const void *k, int64_t k_sb, int64_t k_sp, int64_t k_sh,
                   const void *v, int64_t v_sb, int64_t v_sp, int64_t v_sh,
                   int B, int Nq, int Hq, int Bp, int P, int Hkv, int n_splits, int pingpong, int max_blocks,
                   tkp_out out, const tkp_unique *unique, cudaStream_t stream) {
    using L = layout<T, D, CW, OVERLAP, KV, DEC>;
    constexpr auto kernel = prefix_kernel<T, D, CW, OVERLAP, KV, DEC>;
    globals g{};
    if (const char *e = make_kv_map<T, D, KV>(&g.k_map, k, Bp, P, Hkv, k_sb, k_sp, k_sh)) return e;
    if (const char *e = make_kv_map<T, D, KV>(&g.v_map, v, Bp, P, Hkv, v_sb, v_sp, v_sh)) return e;
    g.q = q; g.q_sb = q_sb; g.q_sn = q_sn; g.q_sh = q_sh;
    g.out = out;
    g.Nq = Nq; g.Hq = Hq; g.Hkv = Hkv; g.P = P; g.pingpong = pingpong;
    g.G = B / Bp; g.R = Hq / Hkv;
    const int64_t M = (int64_t)g.G * Nq * g.R;
    if (M >= (1ll << 31) / 2) return arg_error("prefix: too many stacked query rows (B/Bp * Nq * Hq/Hkv)");
    g.M = (int)M;
    g.m_blocks = (g.M + L::BLOCK_ROWS - 1) / L::BLOCK_ROWS;
    g.n_tiles = (P + KV - 1) / KV;
    g.tiles_per_split = (g.n_tiles + n_splits - 1) / n_splits;
    if ((int64_t)(g.tiles_per_split) * (n_splits - 1) >= g.n_tiles)
        return arg_error("prefix: n_splits leaves an empty split (need n_splits == ceil(n_tiles / ceil(n_tiles / n_splits)))");
    g.groups = Bp * Hkv; g.n_splits = n_splits;
    const int64_t n_items = (int64_t)g.m_blocks * Bp * Hkv * n_splits;
    if (n_items >= (1ll << 31)) return arg_error("prefix: grid too large");
    int64_t units = 0;
    if constexpr (DEC) {
        prefix_decode::unique_part &u = g.u;
        u.k = unique->k; u.v = unique->v;
        u.q_sb = q_sb; u.q_sn = q_sn; u.q_sh = q_sh;
        u.k_sb = unique->k_sb; u.k_ss = unique->k_ss; u.k_sh = unique->k_sh;
        u.v_sb = unique->v_sb; u.v_ss = unique->v_ss; u.v_sh = unique->v_sh;
        u.seq_len = unique->seq_len; u.out = unique->out;
        u.S = unique->S; u.Nq = Nq; u.Hq = Hq; u.R = g.R; u.rows = Nq * g.R;
        units = (int64_t)B * Hkv;
        if (units >= (1ll << 31)) return arg_error("prefix: too many decode units (B * Hkv)");
        u.units = (int)units;
        u.by_r = fast_divmod(g.R); u.by_hkv = fast_divmod(Hkv);
    }

    static bool attribute_set = false;   // per instantiation
    if (!attribute_set) {
        TKP_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::smem_bytes));
        cudaFuncAttributes attr;
        TKP_TRY(cudaFuncGetAttributes(&attr, kernel));
        const int pool = ((attr.numRegs + 7) / 8 * 8) * NUM_THREADS<CW, DEC>;
        const int need = (CW * CONSUMER_REGS<CW, DEC> + PRODUCER_REGS + (DEC ? DECODE_REGS : 0)) * WARPGROUP_THREADS;
        if (need > pool) {
            static thread_local char buf[200];
            snprintf(buf, sizeof(buf), "prefix kernel (CW=%d) compiled to %d registers/thread: setmaxnreg needs %d of %d "
                     "(it would hang); rebuild with the flags of build.py", CW, attr.numRegs, need, pool);
            return buf;
        }
        attribute_set = true;
    }
    // DEC: a persistent grid of one wave at most (a block an SM), over the prefix items and the decode units
    const int64_t work = DEC ? std::max(n_items, units) : n_items;
    const int64_t cap = max_blocks > 0 ? max_blocks : DEC ? tkp_num_sms() : work;
    const int grid = (int)std::min(cap, work);
    kernel<<<grid, NUM_THREADS<CW, DEC>, L::smem_bytes, stream>>>(g);
    return launch_error("tkp prefix_kernel launch");
}

}  // namespace prefix
}  // namespace tkp

extern "C" const char *tkp_prefix_set_trace(void *buffer) {
    if (cudaMemcpyToSymbol(tkp::prefix::g_prefix_trace, &buffer, sizeof(buffer)) != cudaSuccess)
        return tkp::arg_error("prefix trace: cudaMemcpyToSymbol failed");
    return nullptr;
}

extern "C" const char *tkp_prefix_attention(int dtype, int D,
                                            const void *q, int64_t q_sb, int64_t q_sn, int64_t q_sh,
                                            const void *k, int64_t k_sb, int64_t k_sp, int64_t k_sh,
                                            const void *v, int64_t v_sb, int64_t v_sp, int64_t v_sh,
                                            int B, int Nq, int Hq, int Bp, int P, int Hkv, int n_splits,
                                            int consumer_warpgroups, int schedule, int max_blocks, tkp_out out,
                                            const tkp_unique *unique, void *stream) {
    using namespace tkp;
    if (B <= 0 || Nq <= 0 || Hq <= 0 || Bp <= 0 || Hkv <= 0) return arg_error("prefix: B, Nq, Hq, Bp, Hkv must be positive");
    if (B % Bp != 0) return arg_error("prefix: the prefix batch Bp must divide the batch B");
    if (Hq % Hkv != 0) return arg_error("prefix: Hkv must divide Hq");
    if (P <= 0) return arg_error("prefix: P must be >= 1 (an empty prefix is handled by the caller)");
    const int n_tiles = (P + prefix::KV_ROWS - 1) / prefix::KV_ROWS;
    if (n_splits < 1 || n_splits > n_tiles) return arg_error("prefix: n_splits must be in [1, ceil(P/128)]");
    if (n_splits > 1 && out.o_dtype != TKP_FP32) return arg_error("prefix: split key ranges need fp32 partial output slots");
    if (consumer_warpgroups != 2 && consumer_warpgroups != 3) return arg_error("prefix: consumer_warpgroups must be 2 or 3");
    if (q_sb % 8 || q_sn % 8 || q_sh % 8 || (reinterpret_cast<uintptr_t>(q) & 15))
        return arg_error("prefix: q must be 16-byte aligned with strides that are multiples of 8 elements");
    if ((reinterpret_cast<uintptr_t>(out.o) & 15) || (reinterpret_cast<uintptr_t>(out.lse) & 3))
        return arg_error("prefix: o must be 16-byte aligned and lse 4-byte aligned");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (unique) {   // DEC: the suffix decode in a fourth warpgroup (prefix_decode.cuh)
        if (D != 128 || consumer_warpgroups != 2 || (schedule & ~1))
            return arg_error("prefix: the decode inside the prefix kernel needs D 128, 2 consumer warpgroups and the "
                             "serial loop (schedule 0 or 1)");
        if ((int64_t)Nq * (Hq / Hkv) > 16) return arg_error("prefix: the decode inside needs Nq * Hq/Hkv <= 16 rows");
        if (out.o_dtype != TKP_FP32 || unique->out.o_dtype != TKP_FP32)
            return arg_error("prefix: with the decode inside, both parts write fp32 slots");
        if (unique->S < 0) return arg_error("prefix: the unique part's S must be >= 0");
        const int64_t strides[6] = {unique->k_sb, unique->k_ss, unique->k_sh, unique->v_sb, unique->v_ss, unique->v_sh};
        for (int64_t st : strides)
            if (st % 8 != 0) return arg_error("prefix: unique k/v strides must be multiples of 8 elements");
        if ((reinterpret_cast<uintptr_t>(unique->k) | reinterpret_cast<uintptr_t>(unique->v) |
             reinterpret_cast<uintptr_t>(unique->out.o)) & 15)
            return arg_error("prefix: unique k/v and their o slot must be 16-byte aligned");
        if (!unique->out.lse || (reinterpret_cast<uintptr_t>(unique->out.lse) & 3))
            return arg_error("prefix: the unique part's lse must be a 4-byte aligned float buffer");
#define TKP_PREFIX_DEC(TT)                                                                                        \
        return prefix::launch<TT, 128, 2, false, prefix::KV_ROWS, true>(q, q_sb, q_sn, q_sh, k, k_sb, k_sp, k_sh, v, \
                                                                        v_sb, v_sp, v_sh, B, Nq, Hq, Bp, P, Hkv,     \
                                                                        n_splits, schedule & 1, max_blocks, out,    \
                                                                        unique, s)
        if (dtype == TKP_BF16) TKP_PREFIX_DEC(kittens::bf16);
        if (dtype == TKP_FP16) TKP_PREFIX_DEC(half);
#undef TKP_PREFIX_DEC
        return arg_error("prefix: unsupported dtype (bf16 or fp16)");
    }
    if (schedule & 4) {   // bit 2: 176-key tiles (KV_ROWS_WIDE)
        if (D != 128 || consumer_warpgroups != 2 || (schedule & 3) || n_splits != 1)
            return arg_error("prefix: 176-key tiles (schedule bit 2) need D 128, 2 consumer warpgroups, one split and "
                             "the serial loop without ping-pong");
#define TKP_PREFIX_WIDE(TT)                                                                                       \
        return prefix::launch<TT, 128, 2, false, prefix::KV_ROWS_WIDE>(q, q_sb, q_sn, q_sh, k, k_sb, k_sp, k_sh, v,  \
                                                                       v_sb, v_sp, v_sh, B, Nq, Hq, Bp, P, Hkv, 1, 0, \
                                                                       max_blocks, out, nullptr, s)
        if (dtype == TKP_BF16) TKP_PREFIX_WIDE(kittens::bf16);
        if (dtype == TKP_FP16) TKP_PREFIX_WIDE(half);
#undef TKP_PREFIX_WIDE
    }
#define TKP_PREFIX_CASE(TT, DD)                                                                               \
    return consumer_warpgroups == 3                                                                               \
        ? prefix::launch<TT, DD, 3, false>(q, q_sb, q_sn, q_sh, k, k_sb, k_sp, k_sh, v, v_sb, v_sp, v_sh, B, Nq, Hq, \
                                           Bp, P, Hkv, n_splits, 0, max_blocks, out, nullptr, s)                          \
        : (schedule & 2)                                                                                          \
        ? prefix::launch<TT, DD, 2, true>(q, q_sb, q_sn, q_sh, k, k_sb, k_sp, k_sh, v, v_sb, v_sp, v_sh, B, Nq, Hq, \
                                          Bp, P, Hkv, n_splits, 0, max_blocks, out, nullptr, s)                           \
        : prefix::launch<TT, DD, 2, false>(q, q_sb, q_sn, q_sh, k, k_sb, k_sp, k_sh, v, v_sb, v_sp, v_sh, B, Nq, Hq, \
                                           Bp, P, Hkv, n_splits, schedule & 1, max_blocks, out, nullptr, s)
    if (dtype == TKP_BF16 && D == 64)  TKP_PREFIX_CASE(kittens::bf16, 64);
    if (dtype == TKP_BF16 && D == 128) TKP_PREFIX_CASE(kittens::bf16, 128);
    if (dtype == TKP_FP16 && D == 64)  TKP_PREFIX_CASE(half, 64);
    if (dtype == TKP_FP16 && D == 128) TKP_PREFIX_CASE(half, 128);
#undef TKP_PREFIX_CASE
    return arg_error("prefix: unsupported dtype/head_dim (bf16 or fp16, D 64 or 128)");
}
