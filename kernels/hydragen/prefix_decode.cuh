// kernels/hydragen/prefix_decode.cuh -- the suffix decode as a fourth warpgroup of the prefix kernel (prefix.cu, DEC).
//
// Why: with a suffix, Hydragen's step runs the compute-bound prefix and the memory-bound decode one after the other
// (c3 B2048 32/8 P4096: 238 us at suffix 0, 450 us at suffix 64; the roofline assumes the two overlap), and two
// kernels cannot share an SM (a prefix block holds its registers and shared memory). Here each prefix block also
// runs decode units with one more warpgroup: the tensor cores serve the prefix's wgmmas while this warpgroup's
// loads stream the unique K/V.
//
// A unit is one (sequence b, kv-head h) with its <= 16 query rows (Nq * Hq/Hkv), taken by blocks in turn (unit
// blockIdx.x, + gridDim.x, ...), its keys in 64-key tiles through tile16::step (kernels/common/tkp_tile16.cuh) on
// named barrier BAR. One tile buffer: the next tile's Q and K load as soon as this tile's scores are computed, its V
// once this tile's P V is done. Each unit writes one fp32 partial slot (o normalised, natural-log lse; an empty key
// set writes o = 0, lse = -inf), merged with the prefix's slots by the merge kernel after.
#pragma once
#include "../common/tkp_tile16.cuh"

namespace tkp {
namespace prefix_decode {

constexpr int BAR = 7;   // the decode warpgroup's named barrier (1-3: the consumer warpgroups, 4-5: their turns)

// The unique part: q is the prefix kernel's (same rows); field names as decode::globals (load_q_rows, key_limits).
struct unique_part {
    const void *k, *v;
    int64_t q_sb, q_sn, q_sh, k_sb, k_ss, k_sh, v_sb, v_ss, v_sh;
    const int32_t *seq_len;   // nullptr: causal (bottom-right aligned), as tkp_decode_attention
    tkp_out out;              // one fp32 slot
    int S, Nq, Hq, R, rows, units;   // rows = Nq * R <= 16, units = B * Hkv
    fast_divmod by_r, by_hkv;
};

// One unit's keys: kv_end keys visible to its last row (limits grow with the row), >= 1 tile (an empty unit runs
// one all-masked tile, which writes o = 0, lse = -inf).
struct unit_cursor {
    int unit, b, h, kv_end, tile, n_tiles;
};
__device__ __forceinline__ unit_cursor open_unit(const unique_part &u, int unit) {
    int b, h;
    u.by_hkv.divmod(unit, b, h);
    const key_limits<unique_part> limit(u, b);
    const int kv_end = min(limit(u, u.rows - 1), u.S);
    return {unit, b, h, kv_end, 0, max(1, (kv_end + tile16::KEYS - 1) / tile16::KEYS)};
}

// Row r (< u.rows) of unit (b, h): o (this lane's features f0 + 8 nt + 2 tig, +1) / l into the fp32 slot; lse.
template<int D>
__device__ __forceinline__ void write_unit_row(const unique_part &u, int b, int h, int r, int f0, bool write_lse,
                                               float m, float l, const float (&acc)[D / tile16::WARPS / 8][4],
                                               int half) {
    int n, j;
    u.by_r.divmod(r, n, j);
    const int64_t ro = ((int64_t)b * u.Nq + n) * u.Hq + h * u.R + j;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    float *o = static_cast<float *>(u.out.o) + ro * D + f0;
    #pragma unroll
    for (int nt = 0; nt < D / tile16::WARPS / 8; nt++)
        *reinterpret_cast<float2 *>(o + nt * 8) = make_float2(acc[nt][2 * half] * inv, acc[nt][2 * half + 1] * inv);
    if (write_lse) u.out.lse[ro] = l > 0.f ? (m + __log2f(l)) * LN2 : -INFINITY;
}

// The decode warpgroup's loop (its 128 threads; smem_base: tile16::layout<T, D>::BYTES of its own).
template<typename T, int D>
__device__ __forceinline__ void run(const unique_part &u, const void *q_all, unsigned char *smem_base) {
    using namespace tile16;
    constexpr int FPW = D / WARPS;
    const smem<T, D> sm(smem_base);
    const int warp = threadIdx.x / 32 % WARPS, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
    if ((int)blockIdx.x >= u.units) return;
    const T *q = static_cast<const T *>(q_all), *k = static_cast<const T *>(u.k), *v = static_cast<const T *>(u.v);
    const auto k_of = [&](const unit_cursor &c) { return k + c.b * u.k_sb + c.h * u.k_sh; };
    const auto v_of = [&](const unit_cursor &c) { return v + c.b * u.v_sb + c.h * u.v_sh; };

    unit_cursor c = open_unit(u, blockIdx.x);
    load_q_rows<T, D, 16>(sm.q, u, q + c.b * u.q_sb, c.h, 0);
    load_key_rows<T, D>(sm.k, k_of(c), u.k_ss, 0, c.kv_end);
    cp_async_commit();                                  // group: Q and K of the tile
    load_key_rows<T, D>(sm.v, v_of(c), u.v_ss, 0, c.kv_end);
    cp_async_commit();                                  // group: V of the tile
    state<D> st;
    while (true) {
        cp_async_wait<1>();                             // this tile's Q and K (its V may be in flight)
        sync<BAR>();
        unit_cursor nx = c;                             // the tile after this one: this unit's next, or a new unit
        bool has_next = true;
        if (c.tile + 1 < c.n_tiles) nx.tile++;
        else if (c.unit + (int)gridDim.x < u.units) nx = open_unit(u, c.unit + gridDim.x);
        else has_next = false;
        const key_limits<unique_part> limit(u, c.b);
        const int key0 = c.tile * KEYS, key_hi = min(key0 + KEYS, c.kv_end);
        const int lim0 = gid < u.rows ? min(limit(u, gid), c.kv_end) : 0;
        const int lim1 = gid + 8 < u.rows ? min(limit(u, gid + 8), c.kv_end) : 0;
        step<T, D, false, BAR>(sm, st, key0, key_hi, lim0, lim1,
            [&] {   // Q and K read: the next tile's (and, for a new unit, its rows) load during softmax and P V
                if (has_next) {
                    if (nx.tile == 0) load_q_rows<T, D, 16>(sm.q, u, q + nx.b * u.q_sb, nx.h, 0);
                    load_key_rows<T, D>(sm.k, k_of(nx), u.k_ss, nx.tile * KEYS, nx.kv_end);
                }
                cp_async_commit();
            },
            [] { cp_async_wait<1>(); });                // this tile's V (the next Q and K may be in flight)
        sync<BAR>();                                    // every warp's P V done: V and P may be refilled
        if (has_next) load_key_rows<T, D>(sm.v, v_of(nx), u.v_ss, nx.tile * KEYS, nx.kv_end);
        cp_async_commit();
        if (c.tile == c.n_tiles - 1) {                  // the unit's last tile: write its rows, start afresh
            const int f0 = warp * FPW + 2 * tig;
            const bool lse_lane = warp == 0 && tig == 0;
            if (gid < u.rows) write_unit_row<D>(u, c.b, c.h, gid, f0, lse_lane, st.m0, st.l0, st.acc, 0);
            if (gid + 8 < u.rows) write_unit_row<D>(u, c.b, c.h, gid + 8, f0, lse_lane, st.m1, st.l1, st.acc, 1);
            st = state<D>{};
        }
        if (!has_next) break;
        c = nx;
    }
    cp_async_wait<0>();
}

}  // namespace prefix_decode
}  // namespace tkp
