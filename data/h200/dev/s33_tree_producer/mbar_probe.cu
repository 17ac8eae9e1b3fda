// Does racecheck follow mbarrier hand-offs? One producer warp writes a shared word (st.shared) and a cp.async row,
// posts them on an mbarrier (cp.async.mbarrier.arrive.noinc + arrive.release); the consumer warp waits and reads
// both; it then releases the buffer on a second mbarrier, which the producer waits for before the next write.
// Correct by the PTX memory model: a hazard report here is the tool's, not the protocol's.
#include <cstdio>
#include <cstdint>
__device__ int src[32 * 4];
__global__ void probe(int *out) {
    __shared__ uint64_t full, empty;
    __shared__ int info;
    __shared__ __align__(16) int row[32 * 4];
    const uint32_t f = (uint32_t)__cvta_generic_to_shared(&full), e = (uint32_t)__cvta_generic_to_shared(&empty);
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(f), "r"(33));
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(e), "r"(1));
    }
    __syncthreads();
    const int lane = threadIdx.x % 32;
    for (int it = 0; it < 4; it++) {
        if (threadIdx.x < 32) {  // producer
            if (it > 0) asm volatile("{.reg .pred p; W%=: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1; @!p bra W%=;}"
                                     :: "r"(e), "r"((it - 1) & 1) : "memory");
            const uint32_t d = (uint32_t)__cvta_generic_to_shared(&row[lane * 4]);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(d), "l"(&src[lane * 4]) : "memory");
            asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" :: "r"(f) : "memory");
            if (lane == 0) {
                info = it;
                asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" :: "r"(f) : "memory");
            }
        } else {  // consumer
            asm volatile("{.reg .pred p; W%=: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1; @!p bra W%=;}"
                         :: "r"(f), "r"(it & 1) : "memory");
            out[it * 32 + lane] = info + row[lane * 4];
            __syncwarp();
            if (lane == 0) asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" :: "r"(e) : "memory");
        }
    }
    if (threadIdx.x < 32) asm volatile("cp.async.wait_all;" ::: "memory");
}
int main() {
    int *out;
    cudaMalloc(&out, 4 * 32 * sizeof(int));
    probe<<<1, 64>>>(out);
    const cudaError_t err = cudaDeviceSynchronize();
    printf("mbar_probe: %s\n", cudaGetErrorString(err));
    return err != cudaSuccess;
}
