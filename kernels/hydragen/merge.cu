// kernels/hydragen/merge.cu -- exact merge of partial attention states by their log-sum-exp.
//
// For each row r (a (sequence, position, q-head) triple) and the partial states s of up to TKP_MAX_SEGMENTS segments
// of slots (prefix levels, key splits, the unique part):
//     lse = log(sum_s exp(lse_s))            o = sum_s exp(lse_s - lse) * o_s
// An empty partial (lse_s = -inf) weighs 0; all empty gives o = 0, lse = -inf. One warp per row, D/32 features a lane;
// the slots' LSEs are read first (max, then the sum), so each o_s is read exactly once.
#include <type_traits>
#include "../launch.h"
#include "../common/tkp_common.cuh"

namespace tkp {
namespace merge {

constexpr int WARPS = 8;

struct args {
    tkp_segment seg[TKP_MAX_SEGMENTS];
    int n_seg;
    void *o_out;
    float *lse_out;
    int64_t rows;
};

template<typename T, int N> __device__ __forceinline__ void load_feats(const T *p, float (&x)[N]) {
    #pragma unroll
    for (int i = 0; i < N; i++) x[i] = to_float(p[i]);
}

template<typename TO, int D>
__global__ __launch_bounds__(WARPS * 32)
void merge_kernel(const __grid_constant__ args a) {
    constexpr int DPL = D / 32;
    wait_for_prior_grid();   // launched with PDL after the kernel that wrote the slots (tkp_common.cuh)
    const int lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * WARPS + threadIdx.x / 32;
    if (r >= a.rows) return;

    float lse_max = -INFINITY;
    for (int i = 0; i < a.n_seg; i++)
        for (int s = 0; s < a.seg[i].n_slots; s++)
            lse_max = fmaxf(lse_max, a.seg[i].lse[s * a.seg[i].lse_slot_stride + r]);

    float acc[DPL];
    #pragma unroll
    for (int d = 0; d < DPL; d++) acc[d] = 0.f;
    float sum = 0.f;
    if (lse_max != -INFINITY) {
        for (int i = 0; i < a.n_seg; i++) {
            const tkp_segment &sg = a.seg[i];
            for (int s = 0; s < sg.n_slots; s++) {
                const float lse_s = sg.lse[s * sg.lse_slot_stride + r];
                if (lse_s == -INFINITY) continue;
                const float w = __expf(lse_s - lse_max);
                sum += w;
                float x[DPL];
                const int64_t off = s * sg.o_slot_stride + r * D + lane * DPL;
                if (sg.o_dtype == TKP_FP32)      load_feats<float, DPL>(static_cast<const float *>(sg.o) + off, x);
                else if (sg.o_dtype == TKP_BF16) load_feats<__nv_bfloat16, DPL>(static_cast<const __nv_bfloat16 *>(sg.o) + off, x);
                else                             load_feats<__half, DPL>(static_cast<const __half *>(sg.o) + off, x);
                #pragma unroll
                for (int d = 0; d < DPL; d++) acc[d] += w * x[d];
            }
        }
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    TO *o = static_cast<TO *>(a.o_out) + r * D + lane * DPL;
    #pragma unroll
    for (int d = 0; d < DPL; d++) o[d] = from_float<TO>(acc[d] * inv);
    if (lane == 0) a.lse_out[r] = sum > 0.f ? lse_max + __logf(sum) : -INFINITY;
}

template<typename TO, int D>
const char *launch(const args &a, bool pdl, cudaStream_t stream) {
    const int64_t blocks = (a.rows + WARPS - 1) / WARPS;
    if (blocks >= (1ll << 31)) return arg_error("merge: too many rows");
    if (blocks == 0) return nullptr;
    TKP_TRY(launch_pdl(merge_kernel<TO, D>, dim3((unsigned)blocks), dim3(WARPS * 32), 0, stream, pdl, a));
    return launch_error("tkp merge_kernel launch");
}

}  // namespace merge
}  // namespace tkp

extern "C" const char *tkp_merge_slots(int out_dtype, int D, int64_t rows, const tkp_segment *segments, int n_segments,
                                       void *o_out, float *lse_out, int pdl, void *stream) {
    using namespace tkp;
    if (n_segments < 1 || n_segments > TKP_MAX_SEGMENTS) return arg_error("merge: 1..TKP_MAX_SEGMENTS segments");
    if (rows < 0) return arg_error("merge: rows must be >= 0");
    merge::args a{};
    for (int i = 0; i < n_segments; i++) {
        if (segments[i].n_slots < 1) return arg_error("merge: every segment needs >= 1 slot");
        if (segments[i].o_dtype != TKP_FP32 && segments[i].o_dtype != TKP_BF16 && segments[i].o_dtype != TKP_FP16)
            return arg_error("merge: segment dtype must be fp32, bf16 or fp16");
        a.seg[i] = segments[i];
    }
    a.n_seg = n_segments; a.o_out = o_out; a.lse_out = lse_out; a.rows = rows;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (out_dtype == TKP_BF16 && D == 64)  return merge::launch<__nv_bfloat16, 64>(a, pdl != 0, s);
    if (out_dtype == TKP_BF16 && D == 128) return merge::launch<__nv_bfloat16, 128>(a, pdl != 0, s);
    if (out_dtype == TKP_FP16 && D == 64)  return merge::launch<__half, 64>(a, pdl != 0, s);
    if (out_dtype == TKP_FP16 && D == 128) return merge::launch<__half, 128>(a, pdl != 0, s);
    if (out_dtype == TKP_FP32 && D == 64)  return merge::launch<float, 64>(a, pdl != 0, s);
    if (out_dtype == TKP_FP32 && D == 128) return merge::launch<float, 128>(a, pdl != 0, s);
    return arg_error("merge: unsupported dtype/head_dim (bf16, fp16 or fp32 out; D 64 or 128)");
}

extern "C" int tkp_num_sms(void) {
    static int n = -1;
    if (n < 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) n = 132;
    }
    return n;
}
