// kernels/hydragen/decode.cu -- Hydragen's suffix part: per-sequence attention over the unique KV caches.
//
// Memory-bound (each key is used by the Nq*Hq/Hkv query rows of one sequence only), so this is a plain CUDA kernel
// built around the bytes, not the tensor cores: 64-key K/V tiles stream into shared memory with 16-byte cp.async,
// double-buffered, read in place from the (B, S, Hkv, D) caches; each warp keeps the online-softmax state of its rows.
//
//   grid  = (row groups * B * Hkv, n_splits)     a split covers split_keys keys; splits are merged later by LSE
//   block = 4 warps over the same ROWS (<= 8) query rows of one (b, kv-head); warp w owns keys [16w, 16w+16) of
//           every 64-key tile and keeps its own online-softmax state; the 4 states are merged through shared memory
//   lane  : half the dot product of one key (2 lanes a key); D/32 consecutive output features for P V
//
// Key visibility: seq_len == nullptr -> query n sees keys 0 .. S-Nq+n (causal, bottom-right aligned);
// otherwise every query of sequence b sees keys 0 .. seq_len[b]-1 (clamped to [0, S]; 0 = empty: o = 0, lse = -inf).
#include <type_traits>
#include "../launch.h"
#include "../common/tkp_common.cuh"

namespace tkp {
namespace decode {

constexpr int WARPS     = 4;
constexpr int THREADS   = WARPS * 32;
constexpr int TILE_KEYS = 64;
constexpr int PAD       = 8;   // elements of padding per smem row: 16 bytes, so 16-byte reads of 8 rows hit 8 bank groups

struct globals {
    const void *q, *k, *v;
    int64_t q_sb, q_sn, q_sh, k_sb, k_ss, k_sh, v_sb, v_ss, v_sh;
    const int32_t *seq_len;
    tkp_segment pre;     // fp32 partial slots merged into the result before it is written (n_slots 0: none)
    tkp_out out;
    int B, Nq, Hq, S, Hkv, R;
    int rows;            // Nq * R query rows per (b, kv-head)
    int row_groups;      // ceil(rows / rows per block)
    int split_keys;      // keys per split (multiple of TILE_KEYS)
};

__device__ __forceinline__ float warp_max(float x) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ float warp_sum(float x) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ void cp_async_16(uint32_t smem, const void *gmem, bool valid) {
    // .L2::256B: a key row is 256 bytes (D=128), fetched whole into L2 by its first 16-byte request
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template<int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

template<typename T, int D, int ROWS> constexpr size_t smem_bytes() {
    return 4 * TILE_KEYS * (D + PAD) * sizeof(T) + ROWS * D * sizeof(float);
}

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

// 8 consecutive elements (16 bytes) -> float
template<typename T> __device__ __forceinline__ void load8(const T *p, float (&x)[8]) {
    const uint4 raw = *reinterpret_cast<const uint4 *>(p);
    const T *e = reinterpret_cast<const T *>(&raw);
    #pragma unroll
    for (int i = 0; i < 8; i++) x[i] = to_float(e[i]);
}

template<typename T, int D, int ROWS>
__global__ __launch_bounds__(THREADS)
void decode_kernel(const __grid_constant__ globals g) {
    constexpr int LD             = D + PAD;                 // smem row pitch (elements)
    constexpr int DPL            = D / 32;                  // output features per lane
    constexpr int HALF           = D / 2;                   // features per lane in a score (2 lanes per key)
    constexpr int CHUNKS_PER_ROW = D / 8;                   // 16-byte chunks per key row
    constexpr int KEYS_PER_WARP  = TILE_KEYS / WARPS;       // 16: warp w owns keys [16w, 16w+16) of every tile
    constexpr float SCALE = softmax_scale_log2<D>();

    extern __shared__ __align__(16) unsigned char smem_raw[];   // layout: see smem_bytes<T, D, ROWS>()
    auto k_s = reinterpret_cast<T (*)[TILE_KEYS][LD]>(smem_raw);                                  // [2][64][LD]
    auto v_s = reinterpret_cast<T (*)[TILE_KEYS][LD]>(smem_raw + 2 * TILE_KEYS * LD * sizeof(T)); // [2][64][LD]
    auto q_s = reinterpret_cast<float (*)[D]>(smem_raw + 4 * TILE_KEYS * LD * sizeof(T));        // [ROWS][D], base 2
    // after the key loop the K buffers hold each warp's partial state for the cross-warp merge
    auto o_part = reinterpret_cast<float (*)[ROWS][D]>(smem_raw);                                 // [WARPS][ROWS][D]
    auto m_part = reinterpret_cast<float (*)[ROWS]>(smem_raw + WARPS * ROWS * D * sizeof(float)); // [WARPS][ROWS]
    auto l_part = reinterpret_cast<float (*)[ROWS]>(smem_raw + WARPS * ROWS * (D + 1) * sizeof(float));
    static_assert(WARPS * ROWS * (D + 2) * sizeof(float) <= 2 * TILE_KEYS * LD * sizeof(T), "merge scratch > K buffers");

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int rg = blockIdx.x % g.row_groups;
    const int bh = blockIdx.x / g.row_groups;
    const int b = bh / g.Hkv, h = bh % g.Hkv;
    const int split = blockIdx.y;
    const int row_base = rg * ROWS;

    // ---- visible keys: per row, and the block's union
    const int seq_limit = g.seq_len ? min(max(g.seq_len[b], 0), g.S) : -1;
    auto row_limit = [&](int row) {   // keys [0, limit) visible to stacked row `row` (n = row / R)
        return seq_limit >= 0 ? seq_limit : max(0, g.S - g.Nq + row / g.R + 1);
    };
    const int last_row = min(row_base + ROWS, g.rows) - 1;
    const int kv_end   = min(row_limit(last_row), g.S);          // limits grow with the row index
    const int key_lo   = split * g.split_keys;
    const int key_hi   = min(key_lo + g.split_keys, kv_end);
    const int n_tiles  = key_hi > key_lo ? (key_hi - key_lo + TILE_KEYS - 1) / TILE_KEYS : 0;

    const T *kbase = static_cast<const T *>(g.k) + b * g.k_sb + h * g.k_sh;
    const T *vbase = static_cast<const T *>(g.v) + b * g.v_sb + h * g.v_sh;
    auto load_tile = [&](int t, int stage) {
        const int key0 = key_lo + t * TILE_KEYS;
        #pragma unroll
        for (int c = threadIdx.x; c < TILE_KEYS * CHUNKS_PER_ROW; c += THREADS) {
            const int kr = c / CHUNKS_PER_ROW, col = (c % CHUNKS_PER_ROW) * 8;
            const int key = key0 + kr;
            const bool ok = key < key_hi;
            const int64_t kk = ok ? key : 0;
            cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&k_s[stage][kr][col])), kbase + kk * g.k_ss + col, ok);
            cp_async_16(static_cast<uint32_t>(__cvta_generic_to_shared(&v_s[stage][kr][col])), vbase + kk * g.v_ss + col, ok);
        }
        cp_async_commit();
    };
    if (n_tiles > 0) load_tile(0, 0);

    // ---- queries of this block, scaled into base 2
    const T *q = static_cast<const T *>(g.q);
    for (int c = threadIdx.x; c < ROWS * CHUNKS_PER_ROW; c += THREADS) {
        const int r = c / CHUNKS_PER_ROW, col = (c % CHUNKS_PER_ROW) * 8;
        const int row = row_base + r;
        float x[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (row < g.rows) {
            const int n = row / g.R, hq = h * g.R + row % g.R;
            load8(q + b * g.q_sb + n * g.q_sn + hq * g.q_sh + col, x);
        }
        #pragma unroll
        for (int i = 0; i < 8; i++) q_s[r][col + i] = x[i] * SCALE;
    }

    // ---- this warp's online-softmax state of every row (base 2), over the keys it owns
    float m[ROWS], l[ROWS], acc[ROWS][DPL];
    int limit[ROWS];
    #pragma unroll
    for (int r = 0; r < ROWS; r++) {
        m[r] = -INFINITY; l[r] = 0.f;
        #pragma unroll
        for (int d = 0; d < DPL; d++) acc[r][d] = 0.f;
        const int row = row_base + r;
        limit[r] = row < g.rows ? min(row_limit(row), key_hi) : 0;   // keys < limit are visible (and in this split)
    }
    const int my_key = warp * KEYS_PER_WARP + lane / 2;   // this lane's key within a tile
    const int half   = lane % 2;                          // which half of the features it multiplies

    for (int t = 0; t < n_tiles; t++) {
        const int stage = t & 1;
        if (t + 1 < n_tiles) { load_tile(t + 1, stage ^ 1); cp_async_wait<1>(); }
        else                 { cp_async_wait<0>(); }
        __syncthreads();
        const int key = key_lo + t * TILE_KEYS + my_key;

        // score of key `my_key` for every row: half the dot product per lane, the pair summed by one shuffle
        float s[ROWS];
        #pragma unroll
        for (int r = 0; r < ROWS; r++) s[r] = 0.f;
        #pragma unroll
        for (int c = 0; c < HALF; c += 8) {
            float kx[8];
            load8(&k_s[stage][my_key][half * HALF + c], kx);
            #pragma unroll
            for (int r = 0; r < ROWS; r++) {
                const float4 qa = *reinterpret_cast<const float4 *>(&q_s[r][half * HALF + c]);
                const float4 qb = *reinterpret_cast<const float4 *>(&q_s[r][half * HALF + c + 4]);
                s[r] += qa.x * kx[0] + qa.y * kx[1] + qa.z * kx[2] + qa.w * kx[3] + qb.x * kx[4] + qb.y * kx[5] + qb.z * kx[6] + qb.w * kx[7];
            }
        }

        // online softmax update; s becomes the probability of this lane's key
        #pragma unroll
        for (int r = 0; r < ROWS; r++) {
            s[r] += __shfl_xor_sync(0xffffffffu, s[r], 1);
            if (key >= limit[r]) s[r] = -INFINITY;
            const float m_new = fmaxf(m[r], warp_max(s[r]));
            if (m_new == -INFINITY) { s[r] = 0.f; continue; }          // nothing visible yet (warp-uniform)
            const float alpha = exp2f(m[r] - m_new);                   // m = -inf -> 0
            s[r] = exp2f(s[r] - m_new);
            l[r] = l[r] * alpha + warp_sum(half == 0 ? s[r] : 0.f);    // each key counted once
            m[r] = m_new;
            #pragma unroll
            for (int d = 0; d < DPL; d++) acc[r][d] *= alpha;
        }

        // acc += P V over this warp's 16 keys: lane owns features [lane*DPL, lane*DPL + DPL)
        #pragma unroll
        for (int kk = 0; kk < KEYS_PER_WARP; kk++) {
            float vv[DPL];
            load_vec<T, DPL>(&v_s[stage][warp * KEYS_PER_WARP + kk][lane * DPL], vv);
            #pragma unroll
            for (int r = 0; r < ROWS; r++) {
                const float p = __shfl_sync(0xffffffffu, s[r], 2 * kk);
                #pragma unroll
                for (int d = 0; d < DPL; d++) acc[r][d] += p * vv[d];
            }
        }
        __syncthreads();   // the stage is overwritten by the load issued in the next iteration
    }
    cp_async_wait<0>();
    __syncthreads();

    // ---- merge the 4 warps' states (through the K buffers) and write o (final dtype or fp32 slot) and lse
    #pragma unroll
    for (int r = 0; r < ROWS; r++) {
        #pragma unroll
        for (int d = 0; d < DPL; d++) o_part[warp][r][lane * DPL + d] = acc[r][d];
        if (lane == 0) { m_part[warp][r] = m[r]; l_part[warp][r] = l[r]; }
    }
    __syncthreads();
    const bool partial = g.out.o_dtype == TKP_FP32;
    for (int r = warp; r < ROWS; r += WARPS) {
        const int row = row_base + r;
        if (row >= g.rows) continue;
        float m_all = -INFINITY;
        #pragma unroll
        for (int w = 0; w < WARPS; w++) m_all = fmaxf(m_all, m_part[w][r]);
        float l_all = 0.f, o[DPL];
        #pragma unroll
        for (int d = 0; d < DPL; d++) o[d] = 0.f;
        if (m_all != -INFINITY) {
            #pragma unroll
            for (int w = 0; w < WARPS; w++) {
                const float sc = exp2f(m_part[w][r] - m_all);   // an empty warp (m = -inf) weighs 0
                l_all += l_part[w][r] * sc;
                #pragma unroll
                for (int d = 0; d < DPL; d++) o[d] += o_part[w][r][lane * DPL + d] * sc;
            }
        }
        float inv = l_all > 0.f ? 1.f / l_all : 0.f;
        const int n = row / g.R, hq = h * g.R + row % g.R;
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
                for (int d = 0; d < DPL; d++) o[d] *= inv * w;
                for (int s = 0; s < g.pre.n_slots; s++) {
                    const float ws = merge_weight(g.pre.lse[s * g.pre.lse_slot_stride + ro], lse_max);
                    if (ws == 0.f) continue;
                    sum += ws;
                    float x[DPL];
                    load_vec<float, DPL>(static_cast<const float *>(g.pre.o) + s * g.pre.o_slot_stride + ro * D + lane * DPL, x);
                    #pragma unroll
                    for (int d = 0; d < DPL; d++) o[d] += ws * x[d];
                }
            }
            inv = sum > 0.f ? 1.f / sum : 0.f;
            lse = sum > 0.f ? lse_max + __logf(sum) : -INFINITY;
        }
        if (partial) {
            float *op = static_cast<float *>(g.out.o) + split * g.out.o_slot_stride + ro * D + lane * DPL;
            #pragma unroll
            for (int d = 0; d < DPL; d++) op[d] = o[d] * inv;
        } else {
            T *op = static_cast<T *>(g.out.o) + split * g.out.o_slot_stride + ro * D + lane * DPL;
            #pragma unroll
            for (int d = 0; d < DPL; d++) op[d] = from_float<T>(o[d] * inv);
        }
        if (lane == 0) g.out.lse[split * g.out.lse_slot_stride + ro] = lse;
    }
}

template<typename T, int D, int ROWS>
const char *launch(const globals &g0, int n_splits, cudaStream_t stream) {
    globals g = g0;
    g.row_groups = (g.rows + ROWS - 1) / ROWS;
    const int64_t blocks_x = (int64_t)g.row_groups * g.B * g.Hkv;
    if (blocks_x >= (1ll << 31) || n_splits > 65535) return arg_error("decode: grid too large");
    constexpr size_t SMEM = smem_bytes<T, D, ROWS>();
    static bool attribute_set = false;   // per instantiation
    if (!attribute_set) {
        TKP_TRY(cudaFuncSetAttribute(decode_kernel<T, D, ROWS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SMEM));
        attribute_set = true;
    }
    decode_kernel<T, D, ROWS><<<dim3((unsigned)blocks_x, (unsigned)n_splits), THREADS, SMEM, stream>>>(g);
    return launch_error("tkp decode_kernel launch");
}

template<typename T, int D>
const char *launch_rows(const globals &g, int n_splits, cudaStream_t stream) {
    if (g.rows <= 1) return launch<T, D, 1>(g, n_splits, stream);
    if (g.rows <= 2) return launch<T, D, 2>(g, n_splits, stream);
    if (g.rows <= 4) return launch<T, D, 4>(g, n_splits, stream);
    return launch<T, D, 8>(g, n_splits, stream);   // more rows: several row groups, each reading the keys again
}

}  // namespace decode
}  // namespace tkp

extern "C" const char *tkp_decode_attention(int dtype, int D,
                                            const void *q, int64_t q_sb, int64_t q_sn, int64_t q_sh,
                                            const void *k, int64_t k_sb, int64_t k_ss, int64_t k_sh,
                                            const void *v, int64_t v_sb, int64_t v_ss, int64_t v_sh,
                                            const int32_t *seq_len,
                                            int B, int Nq, int Hq, int S, int Hkv, int n_splits, int split_keys,
                                            const tkp_segment *merge_with, tkp_out out, void *stream) {
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
    g.split_keys = split_keys;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (dtype == TKP_BF16 && D == 64)  return decode::launch_rows<__nv_bfloat16, 64>(g, n_splits, s);
    if (dtype == TKP_BF16 && D == 128) return decode::launch_rows<__nv_bfloat16, 128>(g, n_splits, s);
    if (dtype == TKP_FP16 && D == 64)  return decode::launch_rows<__half, 64>(g, n_splits, s);
    if (dtype == TKP_FP16 && D == 128) return decode::launch_rows<__half, 128>(g, n_splits, s);
    return arg_error("decode: unsupported dtype/head_dim (bf16 or fp16, D 64 or 128)");
}
