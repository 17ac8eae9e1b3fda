// 16 query rows x one 64-key tile on the tensor cores (mma.sync m16n8k16, fp32 accumulate), four warps a block:
// the helpers and the tile step of the Hydragen decode's one-tile kernel (kernels/hydragen/decode.cu). (A tree decode
// on it, branch s26-tree-tile, measured 1.12x slower on c8: data/h200/dev/s28_verify.)
//
// tile16_step: the warps split the tile's keys for S = Q K^T (16 each), exchange the rows' maxima, write P (16 x 64
// in T) and the rows' sums through shared memory, then split the features for O = P V (D/4 each), so no 16 x D
// state is merged across warps; an online-softmax state carries across tiles. Operands in shared memory, rows padded
// by PAD elements (16 bytes, so 16-byte reads of 8 rows hit 8 bank groups).
//
// Fragment layouts (PTX ISA, mma.m16n8k16): lane = 4*gid + tig. A (16x16): {a0,a1} row gid, cols 2tig..+1;
// {a2,a3} row gid+8; {a4,a5} row gid, cols 8+2tig..+1; {a6,a7} row gid+8, cols 8+2tig. B (16x8): {b0,b1} rows
// 2tig..+1, col gid; {b2,b3} rows 8+2tig. C (16x8): {c0,c1} row gid, cols 2tig..+1; {c2,c3} row gid+8.
#pragma once
#include <type_traits>
#include "tkp_common.cuh"

namespace tkp {

namespace tile16 {
constexpr int WARPS = 4, THREADS = WARPS * 32;
constexpr int KEYS = 64;   // keys a tile
constexpr int PAD = 8;     // elements of padding a shared-memory row
}  // namespace tile16

__device__ __forceinline__ void cp_async_16(uint32_t smem, const void *gmem, bool valid) {
    // .L2::256B: a key row is 256 bytes (D=128), fetched whole into L2 by its first 16-byte request
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n"
                 ::"r"(smem), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template<int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Thread t copies the 16-byte chunk t % CHUNKS_PER_ROW of key rows t / CHUNKS_PER_ROW + i * ROWS_PER_PASS: a fixed
// trip count, so the loop unrolls into one pointer step per row (a loop from threadIdx.x did not).
template<int D> struct tile_chunks {
    static constexpr int CHUNKS_PER_ROW = D / 8;                        // 16-byte chunks per key row
    static constexpr int ROWS_PER_PASS  = tile16::THREADS / CHUNKS_PER_ROW;
    static constexpr int PASSES         = tile16::KEYS / ROWS_PER_PASS;
    // the thread's index within its four warps (a decode warpgroup of the prefix kernel has threads 384..511)
    static __device__ __forceinline__ int tid() { return threadIdx.x % tile16::THREADS; }
    static __device__ __forceinline__ int row() { return tid() / CHUNKS_PER_ROW; }
    static __device__ __forceinline__ int col() { return tid() % CHUNKS_PER_ROW * 8; }
};

// The loads and key visibility of a decode over (B, S, Hkv, D) caches, shared by the Hydragen decode kernels
// (kernels/hydragen/decode.cu) and the decode warpgroup of the prefix kernel (kernels/hydragen/prefix_decode.cuh).
// G: their globals, with q_sn, q_sh, R (q-heads a kv-head), rows (Nq * R), by_r (divides by R), seq_len, S, Nq.

// The block's query rows [row_base, row_base + ROWS) into q_s (rows past g.rows as zeros); no commit: they join the
// K/V tile's group.
template<typename T, int D, int ROWS, typename G>
__device__ __forceinline__ void load_q_rows(T (*q_s)[D + tile16::PAD], const G &g, const T *q, int h, int row_base) {
    using C = tile_chunks<D>;
    static_assert(ROWS % C::ROWS_PER_PASS == 0, "whole passes");
    #pragma unroll
    for (int i = 0; i < ROWS / C::ROWS_PER_PASS; i++) {
        const int r = C::row() + i * C::ROWS_PER_PASS, row = row_base + r;
        int n, j;
        g.by_r.divmod(row, n, j);
        const bool ok = row < g.rows;
        const T *src = ok ? q + n * g.q_sn + (h * g.R + j) * g.q_sh + C::col() : q;
        cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&q_s[r][C::col()])), src, ok);
    }
}
// Keys [key0, key0 + 64) of K and V into stage `stage` (keys >= key_hi as zeros, so no stale value enters P V);
// commits one cp.async group.
template<typename T, int D>
__device__ __forceinline__ void load_kv_tile(T (*k_s)[tile16::KEYS][D + tile16::PAD],
                                             T (*v_s)[tile16::KEYS][D + tile16::PAD], int stage,
                                             const T *kbase, int64_t k_ss, const T *vbase, int64_t v_ss,
                                             int key0, int key_hi) {
    using C = tile_chunks<D>;
    const int kr0 = C::row(), col = C::col();
    const T *kp = kbase + (int64_t)(key0 + kr0) * k_ss + col, *vp = vbase + (int64_t)(key0 + kr0) * v_ss + col;
    #pragma unroll
    for (int i = 0; i < C::PASSES; i++) {
        const int kr = kr0 + i * C::ROWS_PER_PASS;
        const bool ok = key0 + kr < key_hi;   // else a zero fill (src-size 0, nothing read)
        cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&k_s[stage][kr][col])), ok ? kp : kbase, ok);
        cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&v_s[stage][kr][col])), ok ? vp : vbase, ok);
        kp += C::ROWS_PER_PASS * k_ss;
        vp += C::ROWS_PER_PASS * v_ss;
    }
    cp_async_commit();
}
// The same for one matrix (K or V) of one 64-key tile, no commit: the caller groups it.
template<typename T, int D>
__device__ __forceinline__ void load_key_rows(T (*dst)[D + tile16::PAD], const T *base, int64_t ss, int key0,
                                              int key_hi) {
    using C = tile_chunks<D>;
    const int kr0 = C::row(), col = C::col();
    const T *p = base + (int64_t)(key0 + kr0) * ss + col;
    #pragma unroll
    for (int i = 0; i < C::PASSES; i++) {
        const int kr = kr0 + i * C::ROWS_PER_PASS;
        const bool ok = key0 + kr < key_hi;
        cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&dst[kr][col])), ok ? p : base, ok);
        p += C::ROWS_PER_PASS * ss;
    }
}

// Keys [0, limit) are visible to stacked row `row` (n = row / R) of sequence b; limits grow with the row index.
template<typename G> struct key_limits {
    int seq_limit;   // seq_len[b] clamped to [0, S], or -1: causal
    __device__ __forceinline__ key_limits(const G &g, int b)
        : seq_limit(g.seq_len ? min(max(g.seq_len[b], 0), g.S) : -1) {}
    __device__ __forceinline__ int operator()(const G &g, int row) const {
        return seq_limit >= 0 ? seq_limit : max(0, g.S - g.Nq + g.by_r.div(row) + 1);
    }
};

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *smem) {
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void *smem) {
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}
// c (16x8 fp32) += a (16x16, row) * b (16x8, col), m16n8k16
template<typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        static_assert(std::is_same_v<T, __half>, "bf16 or fp16");
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}
// two floats -> one register of two T (lo in the low half: the lower column index)
template<typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const uint32_t *>(&v);
    } else {
        const __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<const uint32_t *>(&v);
    }
}

// S fragments (16 rows x 16 keys from key0; the lane's rows gid, gid + 8) into base 2, with the keys at or past a
// row's limit (lim0, lim1) set to -inf
template<int D>
__device__ __forceinline__ void scale_and_mask(float (&s)[2][4], int key0, int tig, int lim0, int lim1) {
    constexpr float SCALE = softmax_scale_log2<D>();
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        #pragma unroll
        for (int j = 0; j < 4; j++) {
            const int key = key0 + i * 8 + 2 * tig + (j & 1);
            s[i][j] = key < (j < 2 ? lim0 : lim1) ? s[i][j] * SCALE : -INFINITY;
        }
    }
}

// s <- 2^(s - m) per row (m0: the lane's row gid, m1: gid + 8); 0 where the row's m is -inf (no key visible yet)
__device__ __forceinline__ void exp2_rows(float (&s)[2][4], float m0, float m1) {
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        s[i][0] = m0 == -INFINITY ? 0.f : exp2f(s[i][0] - m0);
        s[i][1] = m0 == -INFINITY ? 0.f : exp2f(s[i][1] - m0);
        s[i][2] = m1 == -INFINITY ? 0.f : exp2f(s[i][2] - m1);
        s[i][3] = m1 == -INFINITY ? 0.f : exp2f(s[i][3] - m1);
    }
}

namespace tile16 {

// Byte offsets in dynamic shared memory: K, V (64 x D), Q (16 x D), P (16 x 64), the warps' row maxima and sums
template<typename T, int D> struct layout {
    static constexpr int LD = D + PAD, PLD = KEYS + PAD;   // row pitches (elements) of K/V/Q and P
    static constexpr size_t K = 0, V = K + KEYS * LD * sizeof(T), Q = V + KEYS * LD * sizeof(T);
    static constexpr size_t P = Q + 16 * LD * sizeof(T), M = P + 16 * PLD * sizeof(T);
    static constexpr size_t L = M + WARPS * 16 * sizeof(float), BYTES = L + WARPS * 16 * sizeof(float);
    static constexpr int BLOCKS = 5;   // an SM: 5 x 41 KB of shared memory at D 128, <= 102 registers
};

template<typename T, int D> struct smem {
    T (*k)[D + PAD], (*v)[D + PAD], (*q)[D + PAD], (*p)[KEYS + PAD];
    float (*m_part)[16], (*l_part)[16];   // [WARPS][16]: each warp's row maxima, row sums
    __device__ __forceinline__ explicit smem(unsigned char *base) {
        using Lay = layout<T, D>;
        k = reinterpret_cast<T (*)[D + PAD]>(base + Lay::K);
        v = reinterpret_cast<T (*)[D + PAD]>(base + Lay::V);
        q = reinterpret_cast<T (*)[D + PAD]>(base + Lay::Q);
        p = reinterpret_cast<T (*)[KEYS + PAD]>(base + Lay::P);
        m_part = reinterpret_cast<float (*)[16]>(base + Lay::M);
        l_part = reinterpret_cast<float (*)[16]>(base + Lay::L);
    }
};

// The online-softmax state of the lane's rows gid and gid + 8 (m, l in base 2: the same in every warp) and of O on
// the warp's features (acc[nt]: features warp * D/4 + 8 nt + 2 tig, +1; un-normalised)
template<int D> struct state {
    static constexpr int NT = D / WARPS / 8;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    float acc[NT][4] = {};
};

// The barrier of the tile's four warps: BAR 0 = the block's (__syncthreads; a block of these four warps only), else
// named barrier BAR of 128 threads (the four warps of a warpgroup inside a larger block).
template<int BAR> __device__ __forceinline__ void sync() {
    if constexpr (BAR == 0) __syncthreads();
    else asm volatile("bar.sync %0, %1;\n" ::"n"(BAR), "n"(THREADS) : "memory");
}
struct no_hook { __device__ __forceinline__ void operator()() const {} };

// One tile: keys [key0, key0 + 64) in sm.k / sm.v (keys >= key_hi zero-filled), the 16 rows in sm.q; keys at or past
// a row's limit (lim0: row gid, lim1: gid + 8; absolute key indices) are masked. Two barriers (sync<BAR>) inside;
// the caller puts one between two steps (they reuse the buffers) and one between the tile's loads and the step.
// FIRST: st is the empty state (a single tile, or the first): nothing to rescale.
// Hooks, for a caller that streams the next tile in during this one: after_scores() runs once every warp has read Q
// and K (sm.q and sm.k may be refilled), before_pv() just before the barrier after which V is read (wait for it).
template<typename T, int D, bool FIRST = false, int BAR = 0, typename AfterScores = no_hook, typename BeforePV = no_hook>
__device__ __forceinline__ void step(const smem<T, D> &sm, state<D> &st, int key0, int key_hi, int lim0, int lim1,
                                     AfterScores after_scores = {}, BeforePV before_pv = {}) {
    constexpr int FPW = D / WARPS;   // features of O a warp
    static_assert(FPW % 16 == 0, "D 64 or 128");
    const int warp = threadIdx.x / 32 % WARPS, lane = threadIdx.x % 32;
    const int gid = lane / 4, tig = lane % 4;

    // ---- S (16 rows x this warp's 16 keys) = Q K^T, into base 2 and masked; the rows' maxima over the tile
    const int k0 = warp * 16;
    float s[2][4];
    #pragma unroll
    for (int i = 0; i < 2; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = -INFINITY;
    if (key0 + k0 < key_hi) {   // warp-uniform: else all 16 keys are past the end
        #pragma unroll
        for (int i = 0; i < 2; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
        #pragma unroll
        for (int ks = 0; ks < D / 16; ks++) {
            uint32_t qa[4], kb[4];
            ldmatrix_x4(qa, &sm.q[((lane / 8) % 2) * 8 + lane % 8][ks * 16 + (lane / 16) * 8]);
            ldmatrix_x4(kb, &sm.k[k0 + (lane / 16) * 8 + lane % 8][ks * 16 + ((lane / 8) % 2) * 8]);
            mma_16816<T>(s[0], qa, kb[0], kb[1]);
            mma_16816<T>(s[1], qa, kb[2], kb[3]);
        }
        scale_and_mask<D>(s, key0 + k0, tig, lim0, lim1);
    }
    float mx0 = fmaxf(fmaxf(s[0][0], s[0][1]), fmaxf(s[1][0], s[1][1]));
    float mx1 = fmaxf(fmaxf(s[0][2], s[0][3]), fmaxf(s[1][2], s[1][3]));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    if (tig == 0) { sm.m_part[warp][gid] = mx0; sm.m_part[warp][gid + 8] = mx1; }
    sync<BAR>();
    after_scores();
    float m0 = st.m0, m1 = st.m1;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) { m0 = fmaxf(m0, sm.m_part[w][gid]); m1 = fmaxf(m1, sm.m_part[w][gid + 8]); }
    // the earlier tiles' weight: st.m = -inf -> 0; nothing visible yet -> 1
    const float al0 = FIRST ? 0.f : m0 == -INFINITY ? 1.f : exp2f(st.m0 - m0);
    const float al1 = FIRST ? 0.f : m1 == -INFINITY ? 1.f : exp2f(st.m1 - m1);

    // ---- P = 2^(S - m), rounded to T into sm.p; the rows' sums of the unrounded values
    exp2_rows(s, m0, m1);
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        *reinterpret_cast<uint32_t *>(&sm.p[gid][k0 + i * 8 + 2 * tig])     = pack2<T>(s[i][0], s[i][1]);
        *reinterpret_cast<uint32_t *>(&sm.p[gid + 8][k0 + i * 8 + 2 * tig]) = pack2<T>(s[i][2], s[i][3]);
    }
    float l0 = s[0][0] + s[0][1] + s[1][0] + s[1][1], l1 = s[0][2] + s[0][3] + s[1][2] + s[1][3];
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    if (tig == 0) { sm.l_part[warp][gid] = l0; sm.l_part[warp][gid + 8] = l1; }
    before_pv();
    sync<BAR>();
    l0 = l1 = 0.f;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) { l0 += sm.l_part[w][gid]; l1 += sm.l_part[w][gid + 8]; }
    st.l0 = FIRST ? l0 : st.l0 * al0 + l0;
    st.l1 = FIRST ? l1 : st.l1 * al1 + l1;
    st.m0 = m0;
    st.m1 = m1;

    // ---- O (16 rows x this warp's D/4 features) += P V over the tile's keys; P by ldmatrix (A), V by .trans (B)
    const int f0 = warp * FPW;
    if constexpr (!FIRST) {
        #pragma unroll
        for (int nt = 0; nt < FPW / 8; nt++) {
            st.acc[nt][0] *= al0; st.acc[nt][1] *= al0;
            st.acc[nt][2] *= al1; st.acc[nt][3] *= al1;
        }
    }
    #pragma unroll
    for (int kk = 0; kk < KEYS / 16; kk++) {
        if (key0 + kk * 16 >= key_hi) break;   // block-uniform: the rest of the tile is past the end
        uint32_t pa[4];
        ldmatrix_x4(pa, &sm.p[((lane / 8) % 2) * 8 + lane % 8][kk * 16 + (lane / 16) * 8]);
        #pragma unroll
        for (int dn = 0; dn < FPW / 16; dn++) {
            uint32_t vb[4];
            ldmatrix_x4_trans(vb, &sm.v[kk * 16 + ((lane / 8) % 2) * 8 + lane % 8][f0 + dn * 16 + (lane / 16) * 8]);
            mma_16816<T>(st.acc[2 * dn], pa, vb[0], vb[1]);
            mma_16816<T>(st.acc[2 * dn + 1], pa, vb[2], vb[3]);
        }
    }
}

}  // namespace tile16
}  // namespace tkp
