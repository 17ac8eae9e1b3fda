// kernels/hydragen/decode.cu -- Hydragen's suffix part: per-sequence attention over the unique KV caches.
//
// Memory-bound: each key is used only by the Nq*Hq/Hkv query rows of its own (sequence, kv-head), so one block
// streams one (b, kv-head)'s K/V once for all those rows (GQA-packed): 64-key K/V tiles go into shared memory with
// 16-byte cp.async, double-buffered, read in place from the (B, S, Hkv, D) caches. The scores and P V run on the
// tensor cores (mma.sync m16n8k16, fp32 accumulate), so the work per key is the same for 1 and 16 rows: the GQA
// rows ride along with the bytes (the fp32 CUDA-core kernel before it did work proportional to the rows per key and
// was compute-bound at 8 rows: 2.4-3.1x the roofline on c3 8/1 S512 on the H200, now 1.08-1.64x;
// scripts/device/NOTES.md).
//
//   decode_kernel<T, D, RT, STAGES>: 16 query rows a row tile, RT = 1, 2, 4 row tiles a block (<= 16, <= 32, more
//       rows; more than 64 rows: several row groups, each reading the keys again). Warp w serves row tile w / (4/RT)
//       and keys [w % (4/RT) * KPW, +KPW) of every tile (KPW = 64*RT/4), in steps of 16 keys: S = Q K^T (K by
//       ldmatrix), online softmax in registers (the 4 lanes of a quad hold a row), O += P V (V by ldmatrix.trans; P
//       rounded to the input dtype, as in FlashAttention). The key groups' states merge through shared memory at the
//       end.
//
//   grid = (row groups * B * Hkv, n_splits)     a split covers split_keys keys; splits are merged later by LSE
//   STAGES: 2 (the ring above); 1 where a split is one tile (caches of <= 64 keys: nothing to overlap within a
//       block), at 4 blocks an SM instead of 3 (data/h200/dev/s23_decode_one_stage), with Q through shared memory
//       (data/h200/dev/s25_decode_q_smem). One tile at <= 16 rows (the suffix-64 item of c1 and c3) runs
//       decode_one_tile_kernel<T, D> instead: the warps split the keys for S and the features for O, so no 16 x D
//       states are merged across warps; 5 blocks an SM (data/h200/dev/s26_decode_one_tile).
//
// Key visibility: seq_len == nullptr -> query n sees keys 0 .. S-Nq+n (causal, bottom-right aligned);
// otherwise every query of sequence b sees keys 0 .. seq_len[b]-1 (clamped to [0, S]; 0 = empty: o = 0, lse = -inf).
#include <type_traits>
#include "../launch.h"
#include "../common/tkp_common.cuh"
#include "../common/tkp_tile16.cuh"

namespace tkp {
namespace decode {

constexpr int WARPS     = tile16::WARPS;
constexpr int THREADS   = tile16::THREADS;
constexpr int TILE_KEYS = tile16::KEYS;
constexpr int PAD       = tile16::PAD;   // elements of padding per smem row (kernels/common/tkp_tile16.cuh)

struct globals {
    const void *q, *k, *v;
    int64_t q_sb, q_sn, q_sh, k_sb, k_ss, k_sh, v_sb, v_ss, v_sh;
    const int32_t *seq_len;
    tkp_segment pre;     // fp32 partial slots merged into the result before it is written (n_slots 0: none)
    tkp_out out;
    int B, Nq, Hq, S, Hkv, R;
    int rows;            // Nq * R query rows per (b, kv-head)
    fast_divmod by_row_groups;   // row groups per (b, kv-head): ceil(rows / rows per block), set by the launch
    fast_divmod by_hkv, by_r;    // Hkv and R, for the block and row indices
    int split_keys;      // keys per split (multiple of TILE_KEYS)
};

// N consecutive elements (N*sizeof(T) bytes, aligned) -> float
template<typename T, int N> __device__ __forceinline__ void load_vec(const T *p, float (&x)[N]) {
    static_assert(N * sizeof(T) == 4 || N * sizeof(T) == 8 || N * sizeof(T) == 16, "4/8/16-byte loads only");
    if constexpr (std::is_same_v<T, float> && N == 4) {
        const float4 f = *reinterpret_cast<const float4 *>(p);
        x[0] = f.x; x[1] = f.y; x[2] = f.z; x[3] = f.w;
        return;
    } else if constexpr (std::is_same_v<T, float> && N == 2) {
        const float2 f = *reinterpret_cast<const float2 *>(p);
        x[0] = f.x; x[1] = f.y;
        return;
    }
    using raw_t = std::conditional_t<N * sizeof(T) == 16, uint4, std::conditional_t<N * sizeof(T) == 8, uint2, uint32_t>>;
    const raw_t raw = *reinterpret_cast<const raw_t *>(p);
    const T *e = reinterpret_cast<const T *>(&raw);
    #pragma unroll
    for (int i = 0; i < N; i++) x[i] = to_float(e[i]);
}

// The end of one query row: un-normalised o (this lane's N features, in groups of G adjacent columns, group i at
// column col0 + i * STEP), base-2 state (m_all, l_all) -> optional fused merge with the prefix slots g.pre -> o (final
// dtype or fp32 slot `split`) and, where write_lse, lse.
template<typename T, int D, int N, int G, int STEP>
__device__ __forceinline__ void write_row(const globals &g, int b, int h, int split, int row, int col0, bool write_lse,
                                          float m_all, float l_all, float (&o)[N]) {
    static_assert(N % G == 0 && (G == 2 || G == 4), "groups of 2 or 4 columns");
    const bool partial = g.out.o_dtype == TKP_FP32;
    float inv = l_all > 0.f ? 1.f / l_all : 0.f;
    int n, r;
    g.by_r.divmod(row, n, r);
    const int hq = h * g.R + r;
    const int64_t ro = ((int64_t)b * g.Nq + n) * g.Hq + hq;
    float lse = l_all > 0.f ? (m_all + __log2f(l_all)) * LN2 : -INFINITY;
    if (g.pre.n_slots > 0) {
        // fused merge with the prefix levels' partial states (natural-log LSE, normalised fp32 o)
        float lse_max = lse;
        for (int s = 0; s < g.pre.n_slots; s++) lse_max = fmaxf(lse_max, g.pre.lse[s * g.pre.lse_slot_stride + ro]);
        float sum = 0.f;
        if (lse_max != -INFINITY) {
            const float w = merge_weight(lse, lse_max);
            sum = w;
            #pragma unroll
            for (int d = 0; d < N; d++) o[d] *= inv * w;
            for (int s = 0; s < g.pre.n_slots; s++) {
                const float ws = merge_weight(g.pre.lse[s * g.pre.lse_slot_stride + ro], lse_max);
                if (ws == 0.f) continue;
                sum += ws;
                const float *slot = static_cast<const float *>(g.pre.o) + s * g.pre.o_slot_stride + ro * D + col0;
                #pragma unroll
                for (int i = 0; i < N / G; i++) {
                    float x[G];
                    load_vec<float, G>(slot + i * STEP, x);
                    #pragma unroll
                    for (int d = 0; d < G; d++) o[i * G + d] += ws * x[d];
                }
            }
        }
        inv = sum > 0.f ? 1.f / sum : 0.f;
        lse = sum > 0.f ? lse_max + __logf(sum) : -INFINITY;
    }
    #pragma unroll
    for (int i = 0; i < N / G; i++) {
        const int64_t at = split * g.out.o_slot_stride + ro * D + col0 + i * STEP;
        if (partial) {
            float *op = static_cast<float *>(g.out.o) + at;
            #pragma unroll
            for (int d = 0; d < G; d++) op[d] = o[i * G + d] * inv;
        } else if constexpr (G == 2) {   // one 4-byte store
            T *op = static_cast<T *>(g.out.o) + at;
            *reinterpret_cast<uint32_t *>(op) = pack2<T>(o[i * G] * inv, o[i * G + 1] * inv);
        } else {
            T *op = static_cast<T *>(g.out.o) + at;
            #pragma unroll
            for (int d = 0; d < G; d++) op[d] = from_float<T>(o[i * G + d] * inv);
        }
    }
    if (write_lse) g.out.lse[split * g.out.lse_slot_stride + ro] = lse;
}

// The one-stage kernel takes Q through shared memory (Q_SMEM): two 16-byte cp.async a thread in the K/V tile's group
// and one ldmatrix a fragment, instead of 4 * D/16 four-byte loads a lane, each of the four warps its own; the
// two-stage kernel keeps Q in registers (its 3 blocks an SM leave no room for the rows).
template<int STAGES> constexpr bool q_in_smem() { return STAGES == 1; }
// K and V tiles of every ring stage, then (Q_SMEM) the block's query rows
template<typename T, int D, int RT, int STAGES> constexpr size_t smem_bytes() {
    return (2 * STAGES * TILE_KEYS + (q_in_smem<STAGES>() ? 16 * RT : 0)) * (D + PAD) * sizeof(T);
}
// Blocks an SM (the register budget: __launch_bounds__) of the one-stage kernel, which serves splits of one tile
// (caches of <= 64 keys) of 17-64 rows (<= 16: decode_one_tile_kernel): nothing to overlap within a block, so more
// blocks keep more loads in flight; 4 fit 128 registers without spilling. The two-stage kernel keeps 3 (its 68 KB of
// shared memory at D 128; <= 168 registers).
constexpr int ONE_TILE_BLOCKS = 4;

template<typename T, int D, int RT, int STAGES>
__global__ __launch_bounds__(THREADS, STAGES == 1 ? ONE_TILE_BLOCKS : 3)
void decode_kernel(const __grid_constant__ globals g) {
    constexpr int LD   = D + PAD;            // smem row pitch (elements)
    constexpr int DPL  = D / 32;             // output features per lane in the epilogue
    constexpr int KG   = WARPS / RT;         // warps splitting the keys of a tile for one row tile
    constexpr int KPW  = TILE_KEYS / KG;     // keys per warp per tile (16, 32, 64)
    constexpr int BLOCK_ROWS = 16 * RT;
    constexpr int OP   = D + 4;              // pitch (floats) of the epilogue scratch
    static_assert(WARPS % RT == 0 && KPW % 16 == 0, "RT in {1, 2, 4}");
    static_assert(STAGES == 1 || STAGES == 2, "a ring of one or two tiles");

    constexpr bool Q_SMEM = q_in_smem<STAGES>();
    extern __shared__ __align__(16) unsigned char smem_raw[];   // layout: see smem_bytes<T, D, RT, STAGES>()
    auto k_s = reinterpret_cast<T (*)[TILE_KEYS][LD]>(smem_raw);                                   // [STAGES][64][LD]
    auto v_s = reinterpret_cast<T (*)[TILE_KEYS][LD]>(smem_raw + STAGES * TILE_KEYS * LD * sizeof(T));   // the same
    auto q_s = reinterpret_cast<T (*)[LD]>(smem_raw + 2 * STAGES * TILE_KEYS * LD * sizeof(T));    // [BLOCK_ROWS][LD]
    // after the key loop the K (and V) buffers hold each warp's partial state for the cross-warp merge
    auto o_part = reinterpret_cast<float (*)[16][OP]>(smem_raw);                                  // [WARPS][16][OP]
    auto m_part = reinterpret_cast<float (*)[16]>(smem_raw + WARPS * 16 * OP * sizeof(float));   // [WARPS][16]
    auto l_part = reinterpret_cast<float (*)[16]>(smem_raw + WARPS * 16 * (OP + 1) * sizeof(float));
    static_assert(WARPS * 16 * (OP + 2) * sizeof(float) <= 2 * STAGES * TILE_KEYS * LD * sizeof(T),
                  "merge scratch > K/V buffers");

    allow_dependents();   // the merge after a split decode may be scheduled (tkp_common.cuh)
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int gid = lane / 4, tig = lane % 4;
    const int rt = warp / KG, kg = warp % KG;   // this warp's row tile and key group
    int rg, bh, b, h;
    g.by_row_groups.divmod(blockIdx.x, bh, rg);
    g.by_hkv.divmod(bh, b, h);
    const int split = blockIdx.y;
    const int row_base = rg * BLOCK_ROWS;

    // ---- visible keys: per row, and the block's union
    const key_limits limit(g, b);
    const int last_row = min(row_base + BLOCK_ROWS, g.rows) - 1;
    const int kv_end   = min(limit(g, last_row), g.S);           // limits grow with the row index
    const int key_lo   = split * g.split_keys;
    const int key_hi   = min(key_lo + g.split_keys, kv_end);
    const int n_tiles  = key_hi > key_lo ? (key_hi - key_lo + TILE_KEYS - 1) / TILE_KEYS : 0;

    const T *kbase = static_cast<const T *>(g.k) + b * g.k_sb + h * g.k_sh;
    const T *vbase = static_cast<const T *>(g.v) + b * g.v_sb + h * g.v_sh;
    const T *q = static_cast<const T *>(g.q) + b * g.q_sb;
    if (n_tiles > 0) {
        if constexpr (Q_SMEM) load_q_rows<T, D, BLOCK_ROWS>(q_s, g, q, h, row_base);
        load_kv_tile<T, D>(k_s, v_s, 0, kbase, g.k_ss, vbase, g.v_ss, key_lo, key_hi);
    }

    // ---- this lane's two rows (gid, gid + 8 of the warp's row tile): Q as A fragments, unscaled, straight from
    // global (or, Q_SMEM, by ldmatrix in the key loop)
    const int r0 = row_base + rt * 16 + gid, r1 = r0 + 8;
    uint32_t qa[D / 16][4];
    if constexpr (!Q_SMEM) {
        int n0, i0, n1, i1;
        g.by_r.divmod(r0, n0, i0);
        g.by_r.divmod(r1, n1, i1);
        const T *q0 = r0 < g.rows ? q + n0 * g.q_sn + (h * g.R + i0) * g.q_sh : nullptr;
        const T *q1 = r1 < g.rows ? q + n1 * g.q_sn + (h * g.R + i1) * g.q_sh : nullptr;
        #pragma unroll
        for (int ks = 0; ks < D / 16; ks++) {
            const int c = ks * 16 + 2 * tig;
            qa[ks][0] = q0 ? *reinterpret_cast<const uint32_t *>(q0 + c) : 0u;
            qa[ks][1] = q1 ? *reinterpret_cast<const uint32_t *>(q1 + c) : 0u;
            qa[ks][2] = q0 ? *reinterpret_cast<const uint32_t *>(q0 + c + 8) : 0u;
            qa[ks][3] = q1 ? *reinterpret_cast<const uint32_t *>(q1 + c + 8) : 0u;
        }
    }
    const int lim0 = r0 < g.rows ? min(limit(g, r0), key_hi) : 0;   // keys < lim are visible (and in this split)
    const int lim1 = r1 < g.rows ? min(limit(g, r1), key_hi) : 0;

    // ---- online-softmax state of the two rows (base 2; l summed over this lane's columns only, reduced at the end)
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    float acc[D / 8][4];
    #pragma unroll
    for (int nt = 0; nt < D / 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;

    for (int t = 0; t < n_tiles; t++) {   // STAGES 1: n_tiles <= 1 (the launch's split_keys is one tile)
        const int stage = STAGES == 1 ? 0 : t & 1;
        if (STAGES > 1 && t + 1 < n_tiles) {
            load_kv_tile<T, D>(k_s, v_s, stage ^ 1, kbase, g.k_ss, vbase, g.v_ss, key_lo + (t + 1) * TILE_KEYS, key_hi);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int tile_key0 = key_lo + t * TILE_KEYS;

        #pragma unroll
        for (int step = 0; step < KPW / 16; step++) {
            const int k0 = kg * KPW + step * 16;              // first key (in the tile) of this 16-key step
            if (tile_key0 + k0 >= key_hi) break;              // warp-uniform: the rest of the tile is past the end

            // S (16 rows x 16 keys) = Q K^T: two 8-key n-tiles; ldmatrix x4 = keys {0-7, 8-15} x features {0-7, 8-15}
            float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
            #pragma unroll
            for (int ks = 0; ks < D / 16; ks++) {
                uint32_t kb[4];
                ldmatrix_x4(kb, &k_s[stage][k0 + (lane / 16) * 8 + lane % 8][ks * 16 + ((lane / 8) % 2) * 8]);
                // Q_SMEM: x4 = rows {0-7, 8-15} x features {0-7, 8-15} of the row tile, the A fragment's a0..a3
                if constexpr (Q_SMEM)
                    ldmatrix_x4(qa[ks], &q_s[rt * 16 + ((lane / 8) % 2) * 8 + lane % 8][ks * 16 + (lane / 16) * 8]);
                mma_16816<T>(s[0], qa[ks], kb[0], kb[1]);
                mma_16816<T>(s[1], qa[ks], kb[2], kb[3]);
            }

            // scale into base 2, mask, online softmax (a row's 16 scores sit in the 4 lanes of a quad)
            scale_and_mask<D>(s, tile_key0 + k0, tig, lim0, lim1);
            float mx0 = -INFINITY, mx1 = -INFINITY;
            #pragma unroll
            for (int i = 0; i < 2; i++) {
                mx0 = fmaxf(mx0, fmaxf(s[i][0], s[i][1]));
                mx1 = fmaxf(mx1, fmaxf(s[i][2], s[i][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            const float al0 = mn0 == -INFINITY ? 1.f : exp2f(m0 - mn0);   // m = -inf -> 0; nothing visible yet -> 1
            const float al1 = mn1 == -INFINITY ? 1.f : exp2f(m1 - mn1);
            exp2_rows(s, mn0, mn1);
            l0 = l0 * al0 + (s[0][0] + s[0][1] + s[1][0] + s[1][1]);
            l1 = l1 * al1 + (s[0][2] + s[0][3] + s[1][2] + s[1][3]);
            m0 = mn0; m1 = mn1;
            #pragma unroll
            for (int nt = 0; nt < D / 8; nt++) {
                acc[nt][0] *= al0; acc[nt][1] *= al0;
                acc[nt][2] *= al1; acc[nt][3] *= al1;
            }

            // O += P V: P (16 x 16 keys) is already an A fragment; ldmatrix.trans x4 = keys {0-7, 8-15} x features
            // {0-7, 8-15} of V, i.e. the B fragments of two 8-feature n-tiles
            const uint32_t pa[4] = {pack2<T>(s[0][0], s[0][1]), pack2<T>(s[0][2], s[0][3]),
                                    pack2<T>(s[1][0], s[1][1]), pack2<T>(s[1][2], s[1][3])};
            #pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
                uint32_t vb[4];
                ldmatrix_x4_trans(vb, &v_s[stage][k0 + ((lane / 8) % 2) * 8 + lane % 8][dn * 16 + (lane / 16) * 8]);
                mma_16816<T>(acc[2 * dn], pa, vb[0], vb[1]);
                mma_16816<T>(acc[2 * dn + 1], pa, vb[2], vb[3]);
            }
        }
        __syncthreads();   // the stage is overwritten by the load issued in the next iteration
    }
    cp_async_wait<0>();
    __syncthreads();

    // ---- merge the key groups' states of each row tile (through the K buffers) and write
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    #pragma unroll
    for (int nt = 0; nt < D / 8; nt++) {
        *reinterpret_cast<float2 *>(&o_part[warp][gid][nt * 8 + 2 * tig])     = make_float2(acc[nt][0], acc[nt][1]);
        *reinterpret_cast<float2 *>(&o_part[warp][gid + 8][nt * 8 + 2 * tig]) = make_float2(acc[nt][2], acc[nt][3]);
    }
    if (tig == 0) {
        m_part[warp][gid] = m0; m_part[warp][gid + 8] = m1;
        l_part[warp][gid] = l0; l_part[warp][gid + 8] = l1;
    }
    __syncthreads();
    // Launched with PDL after the prefix: its slots (g.pre) are written, and o may be written. Every thread waits, after
    // the block's shared-memory merge (no global access), so that merge too overlaps the prefix's last blocks.
    wait_for_prior_grid();
    for (int r = warp; r < BLOCK_ROWS; r += WARPS) {
        const int row = row_base + r;
        if (row >= g.rows) continue;
        const int w0 = (r / 16) * KG, lr = r % 16;   // the KG warps that hold this row
        float m_all = -INFINITY;
        #pragma unroll
        for (int w = 0; w < KG; w++) m_all = fmaxf(m_all, m_part[w0 + w][lr]);
        float l_all = 0.f, o[DPL];
        #pragma unroll
        for (int d = 0; d < DPL; d++) o[d] = 0.f;
        if (m_all != -INFINITY) {
            #pragma unroll
            for (int w = 0; w < KG; w++) {
                const float sc = exp2f(m_part[w0 + w][lr] - m_all);   // an empty warp (m = -inf) weighs 0
                l_all += l_part[w0 + w][lr] * sc;
                float x[DPL];
                load_vec<float, DPL>(&o_part[w0 + w][lr][lane * DPL], x);
                #pragma unroll
                for (int d = 0; d < DPL; d++) o[d] += x[d] * sc;
            }
        }
        write_row<T, D, DPL, DPL, 0>(g, b, h, split, row, lane * DPL, lane == 0, m_all, l_all, o);
    }
}

// ---- One tile, <= 16 rows (the suffix-64 item: one (sequence, kv-head) and one 64-key tile a block) -------------
// tile16::step (kernels/common/tkp_tile16.cuh): the warps split the keys for S and the features for O, so no 16 x D
// state is merged across warps (decode_kernel's merge: 32 KB of shared memory and its barriers for 1-16 real rows).
// Q comes through shared memory as in the one-stage decode_kernel.
template<typename T, int D>
__global__ __launch_bounds__(THREADS, tile16::layout<T, D>::BLOCKS)
void decode_one_tile_kernel(const __grid_constant__ globals g) {
    constexpr int FPW = D / WARPS;   // features of O a warp
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const tile16::smem<T, D> sm(smem_raw);
    allow_dependents();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int gid = lane / 4, tig = lane % 4;
    int b, h;
    g.by_hkv.divmod(blockIdx.x, b, h);   // one row group (<= 16 rows)
    const int split = blockIdx.y;

    const key_limits limit(g, b);
    const int key_lo = split * TILE_KEYS;
    const int key_hi = min(key_lo + TILE_KEYS, min(limit(g, g.rows - 1), g.S));
    if (key_hi > key_lo) {   // block-uniform
        load_q_rows<T, D, 16>(sm.q, g, static_cast<const T *>(g.q) + b * g.q_sb, h, 0);
        load_kv_tile<T, D>(reinterpret_cast<T (*)[TILE_KEYS][D + PAD]>(sm.k),
                           reinterpret_cast<T (*)[TILE_KEYS][D + PAD]>(sm.v), 0,
                           static_cast<const T *>(g.k) + b * g.k_sb + h * g.k_sh, g.k_ss,
                           static_cast<const T *>(g.v) + b * g.v_sb + h * g.v_sh, g.v_ss, key_lo, key_hi);
        cp_async_wait<0>();
        __syncthreads();
    }
    const int r0 = gid, r1 = gid + 8;   // this lane's two rows
    const int lim0 = r0 < g.rows ? min(limit(g, r0), key_hi) : 0;   // keys < lim are visible (and in this split)
    const int lim1 = r1 < g.rows ? min(limit(g, r1), key_hi) : 0;
    tile16::state<D> st;
    tile16::step<T, D, true>(sm, st, key_lo, key_hi, lim0, lim1);
    wait_for_prior_grid();   // as in decode_kernel

    // ---- each lane writes its pairs of features (f0 + 8 nt + 2 tig, +1) of its two rows; warp 0 the rows' lse
    float o0[FPW / 4], o1[FPW / 4];
    #pragma unroll
    for (int nt = 0; nt < FPW / 8; nt++) {
        o0[2 * nt] = st.acc[nt][0]; o0[2 * nt + 1] = st.acc[nt][1];
        o1[2 * nt] = st.acc[nt][2]; o1[2 * nt + 1] = st.acc[nt][3];
    }
    const int f0 = warp * FPW;
    const bool lse_lane = warp == 0 && tig == 0;
    if (r0 < g.rows) write_row<T, D, FPW / 4, 2, 8>(g, b, h, split, r0, f0 + 2 * tig, lse_lane, st.m0, st.l0, o0);
    if (r1 < g.rows) write_row<T, D, FPW / 4, 2, 8>(g, b, h, split, r1, f0 + 2 * tig, lse_lane, st.m1, st.l1, o1);
}

template<typename KERNEL>
const char *launch_kernel(KERNEL kernel, const globals &g, int rows_per_block, size_t smem, int n_splits, bool pdl,
                          cudaStream_t stream, bool &attribute_set) {
    const int row_groups = (g.rows + rows_per_block - 1) / rows_per_block;
    globals ga = g;
    ga.by_row_groups = fast_divmod(row_groups);
    const int64_t blocks_x = (int64_t)row_groups * g.B * g.Hkv;
    if (blocks_x >= (1ll << 31) || n_splits > 65535) return arg_error("decode: grid too large");
    if (!attribute_set) {
        TKP_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        attribute_set = true;
    }
    TKP_TRY(launch_pdl(kernel, dim3((unsigned)blocks_x, (unsigned)n_splits), dim3(THREADS), smem, stream, pdl, ga));
    return launch_error("tkp decode kernel launch");
}

template<typename T, int D, int RT, int STAGES>
const char *launch(const globals &g, int n_splits, bool pdl, cudaStream_t stream) {
    static bool attribute_set = false;   // per instantiation
    return launch_kernel(decode_kernel<T, D, RT, STAGES>, g, 16 * RT, smem_bytes<T, D, RT, STAGES>(), n_splits, pdl,
                         stream, attribute_set);
}
template<typename T, int D, int RT>
const char *launch_stages(const globals &g, int n_splits, bool pdl, cudaStream_t stream) {
    if (g.split_keys != TILE_KEYS) return launch<T, D, RT, 2>(g, n_splits, pdl, stream);
    if constexpr (RT == 1) {
        static bool attribute_set = false;
        return launch_kernel(decode_one_tile_kernel<T, D>, g, 16, tile16::layout<T, D>::BYTES, n_splits, pdl, stream,
                             attribute_set);
    } else {
        return launch<T, D, RT, 1>(g, n_splits, pdl, stream);
    }
}

// rows per block 16 / 32 / 64 (tkprefix.tk_hydragen._decode_blocks mirrors this)
template<typename T, int D>
const char *launch_rows(const globals &g, int n_splits, bool pdl, cudaStream_t stream) {
    if (g.rows <= 16) return launch_stages<T, D, 1>(g, n_splits, pdl, stream);
    if (g.rows <= 32) return launch_stages<T, D, 2>(g, n_splits, pdl, stream);
    return launch_stages<T, D, 4>(g, n_splits, pdl, stream);   // more rows: several row groups (each reads the keys)
}

}  // namespace decode
}  // namespace tkp

extern "C" const char *tkp_decode_attention(int dtype, int D,
                                            const void *q, int64_t q_sb, int64_t q_sn, int64_t q_sh,
                                            const void *k, int64_t k_sb, int64_t k_ss, int64_t k_sh,
                                            const void *v, int64_t v_sb, int64_t v_ss, int64_t v_sh,
                                            const int32_t *seq_len,
                                            int B, int Nq, int Hq, int S, int Hkv, int n_splits, int split_keys,
                                            const tkp_segment *merge_with, tkp_out out, int pdl, void *stream) {
    using namespace tkp;
    if (B <= 0 || Nq <= 0 || Hq <= 0 || Hkv <= 0 || S < 0) return arg_error("decode: B, Nq, Hq, Hkv must be positive, S >= 0");
    if (Hq % Hkv != 0) return arg_error("decode: Hkv must divide Hq");
    if (split_keys <= 0 || split_keys % decode::TILE_KEYS != 0) return arg_error("decode: split_keys must be a positive multiple of 64");
    if (n_splits < 1) return arg_error("decode: n_splits must be >= 1");
    if ((int64_t)n_splits * split_keys < S) return arg_error("decode: n_splits * split_keys must cover S");
    if (n_splits > 1 && out.o_dtype != TKP_FP32) return arg_error("decode: split key ranges need fp32 partial output slots");
    const int64_t strides[9] = {q_sb, q_sn, q_sh, k_sb, k_ss, k_sh, v_sb, v_ss, v_sh};
    for (int64_t st : strides)
        if (st % 8 != 0) return arg_error("decode: q/k/v strides must be multiples of 8 elements (16-byte rows)");
    if ((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k) | reinterpret_cast<uintptr_t>(v)) & 15)
        return arg_error("decode: q/k/v must be 16-byte aligned");
    // write_row stores a final o's features in 4-byte pairs (decode_one_tile_kernel; decode_kernel at D 64)
    if ((reinterpret_cast<uintptr_t>(out.o) & 3) || (out.o_dtype != TKP_FP32 && (out.o_slot_stride & 1)))
        return arg_error("decode: o must be 4-byte aligned");
    decode::globals g{};
    if (merge_with && merge_with->n_slots > 0) {
        if (n_splits != 1 || out.o_dtype == TKP_FP32) return arg_error("decode: merge_with needs n_splits == 1 and a final output");
        if (merge_with->o_dtype != TKP_FP32) return arg_error("decode: merge_with slots must be fp32");
        if (reinterpret_cast<uintptr_t>(merge_with->o) & 15) return arg_error("decode: merge_with o must be 16-byte aligned");
        g.pre = *merge_with;
    }
    g.q = q; g.k = k; g.v = v;
    g.q_sb = q_sb; g.q_sn = q_sn; g.q_sh = q_sh;
    g.k_sb = k_sb; g.k_ss = k_ss; g.k_sh = k_sh;
    g.v_sb = v_sb; g.v_ss = v_ss; g.v_sh = v_sh;
    g.seq_len = seq_len; g.out = out;
    g.B = B; g.Nq = Nq; g.Hq = Hq; g.S = S; g.Hkv = Hkv; g.R = Hq / Hkv;
    g.rows = Nq * g.R;
    g.by_hkv = fast_divmod(Hkv);
    g.by_r = fast_divmod(g.R);
    g.split_keys = split_keys;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (dtype == TKP_BF16 && D == 64)  return decode::launch_rows<__nv_bfloat16, 64>(g, n_splits, pdl != 0, s);
    if (dtype == TKP_BF16 && D == 128) return decode::launch_rows<__nv_bfloat16, 128>(g, n_splits, pdl != 0, s);
    if (dtype == TKP_FP16 && D == 64)  return decode::launch_rows<__half, 64>(g, n_splits, pdl != 0, s);
    if (dtype == TKP_FP16 && D == 128) return decode::launch_rows<__half, 128>(g, n_splits, pdl != 0, s);
    return arg_error("decode: unsupported dtype/head_dim (bf16 or fp16, D 64 or 128)");
}
