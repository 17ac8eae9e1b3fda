// kernels/common/tkp_common.cuh -- small device/host helpers shared by the kernel families.
//
//   TKP_TRY(expr)            : run a CUDA runtime call; on failure return a message naming the call (from a launcher)
//   tkp_launch_error(name)   : the error of the launch just made (cudaGetLastError), as such a message, or nullptr
//   softmax_scale_log2<D>()  : 1/sqrt(D) * log2(e), derived from D (the kernels work in base 2, report natural log)
//   to_float / from_float    : bf16 / half / float element conversions
//   fast_divmod              : n / d and n % d by multiply-high for a divisor set at launch
//   lse_state                : an online-softmax state (running max m, running sum l) in base 2, merged exactly
//   launch_pdl / wait_for_prior_grid / allow_dependents : programmatic dependent launch (Hopper), see below
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>

namespace tkp {

// ------------------------------------------------------------------------------------------------ errors
// Launchers return `const char*`: nullptr on success, else a thread-local message. Kept here so every family words
// its errors the same way.
inline const char *error_message(const char *what, cudaError_t err) {
    static thread_local char buf[512];
    snprintf(buf, sizeof(buf), "%s failed: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
    return buf;
}
inline const char *arg_error(const char *msg) {
    static thread_local char buf[512];
    snprintf(buf, sizeof(buf), "%s", msg);
    return buf;
}
inline const char *launch_error(const char *kernel_name) {
    cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : error_message(kernel_name, err);
}
#define TKP_TRY(expr)                                                    \
    do {                                                                 \
        cudaError_t tkp_err_ = (expr);                                   \
        if (tkp_err_ != cudaSuccess) return ::tkp::error_message(#expr, tkp_err_); \
    } while (0)

// ------------------------------------------------------------------------------------------------ constants
constexpr float LOG2E = 1.4426950408889634f;   // log2(e)
constexpr float LN2   = 0.6931471805599453f;   // ln(2)

constexpr double constexpr_sqrt(double x) {     // Newton's method, exact enough for 1/sqrt(D) in float
    double r = x > 1 ? x : 1;
    for (int i = 0; i < 64; i++) r = 0.5 * (r + x / r);
    return r;
}
// exp(s/sqrt(D)) == exp2(s * softmax_scale_log2<D>())
template<int D> constexpr float softmax_scale_log2() { return float(1.4426950408889634 / constexpr_sqrt(double(D))); }

// ------------------------------------------------------------------------------------------------ conversions
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template<typename T> __device__ __forceinline__ T from_float(float x);
template<> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template<> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template<> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half(x); }

// ------------------------------------------------------------------------------------------------ integer division
// n / d and n % d for a divisor set on the host (1 <= d, 0 <= n < 2^31) by a multiply-high and a shift, as CUTLASS's
// FastDivmod: for a runtime divisor nvcc emits ~20 instructions, which in a short block sit before its first load.
struct fast_divmod {
    int d = 1;
    uint32_t mul = 0, shift = 0;
    fast_divmod() = default;
    explicit fast_divmod(int divisor) : d(divisor) {
        if (d == 1) return;
        int log2_ceil = 0;
        while ((1ll << log2_ceil) < d) log2_ceil++;
        const int p = 31 + log2_ceil;   // m = ceil(2^p / d) < 2^32
        mul = static_cast<uint32_t>(((1ull << p) + d - 1) / d);
        shift = p - 32;
    }
    __device__ __forceinline__ int div(int n) const { return d == 1 ? n : (int)(__umulhi((uint32_t)n, mul) >> shift); }
    __device__ __forceinline__ void divmod(int n, int &q, int &r) const { q = div(n); r = n - q * d; }
};

// ------------------------------------------------------------------------------------------------ LSE algebra
// State of a softmax over a set of keys, in base 2: m = max of the (scaled, base-2) scores, l = sum 2^(s - m).
// The natural-log LSE of the set is (m + log2(l)) * ln 2; an empty set has m = -inf, l = 0, lse = -inf.
struct lse_state {
    float m, l;
    __device__ __forceinline__ static lse_state empty() { return {-INFINITY, 0.f}; }
    __device__ __forceinline__ float lse() const { return l > 0.f ? (m + __log2f(l)) * LN2 : -INFINITY; }
};

// Merge weight of a partial with natural-log LSE `lse_s` into a total with LSE `lse_total` (-inf safe: an empty
// partial weighs 0, and an all-empty total gives 0 everywhere).
__device__ __forceinline__ float merge_weight(float lse_s, float lse_total) {
    return (lse_s == -INFINITY) ? 0.f : __expf(lse_s - lse_total);
}

// ------------------------------------------------------------------------------------------------ dependent launch
// Programmatic dependent launch (Hopper; CUDA programming guide, "Programmatic Dependent Launch"): a kernel launched
// by launch_pdl(..., pdl = true) may be scheduled while the kernel before it on the stream still runs, once every
// block of that kernel has called allow_dependents() or exited; its blocks then fill the SMs the earlier kernel's
// blocks leave. Such a kernel must call wait_for_prior_grid() in every thread before it reads the earlier kernel's
// outputs and before its first global write; that also orders its completion after the earlier kernel's, so a third
// kernel that waits on it sees both. Both instructions are no-ops in a kernel launched without the attribute.
// Only the wrappers set pdl, and only where the kernel before is their own: the decode reads q, k and v before its
// wait, so the kernel before it must not be one that writes them (a caller's).
__device__ __forceinline__ void wait_for_prior_grid() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void allow_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

template<typename... Params, typename... Args>
inline cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                              bool pdl, const Args &...args) {
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = pdl ? 1 : 0;
    cudaLaunchConfig_t cfg{grid, block, smem, stream, &attr, 1};
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

}  // namespace tkp
