// Binding of the ThunderKittens chunk-first kernel of jacksontromero/chunk-attention-tk (the project tkprefix grew
// from): attn_chunk_first_tk<64, 64, 128>, bf16, chunk 64, d 128, at most 64 sequences per chunk entry.
// Their kernel file is not part of this repository: tkprefix.bench.prior_tk copies it at build time, without its
// test harness (#include "harness.impl", which defines main) and without its path into their bundled TK, to
// prior_chunk_first_kernel.cu in the git-ignored build folder, and this file includes that copy. The launch
// (grid, block, dynamic shared memory) follows their harness.impl.
#include <torch/extension.h>

#include "prior_chunk_first_kernel.cu"

namespace {
constexpr int kMaxSeqs = 64, kChunk = 64, kDHead = 128;
using Globals = attn_chunk_first_globals<kMaxSeqs, kDHead>;

// q (H, B, D) bf16; keys / values: int64 device pointers, one per chunk entry, each to a (H, 64, D) bf16 block;
// offsets / begins / ends: int32 per entry (output row offset, sequence range). Returns (attns, maxs, sums):
// stream: the caller's cudaStream_t (torch.cuda.current_stream().cuda_stream, so a captured call stays on the
// capture stream). attns (rows * H, D) fp32 unnormalized, maxs / sums (rows * H,) fp32, rows = sum over entries of end - begin;
// entry c's rows start at offsets[c] * H, ordered (head, sequence).
std::vector<torch::Tensor> chunk_first(torch::Tensor q, torch::Tensor keys, torch::Tensor values,
                                       torch::Tensor offsets, torch::Tensor begins, torch::Tensor ends,
                                       int64_t rows, int64_t stream) {
    TORCH_CHECK(q.is_cuda() && q.scalar_type() == torch::kBFloat16 && q.dim() == 3 && q.size(2) == kDHead &&
                q.is_contiguous(), "q: need a contiguous CUDA bf16 (H, B, 128) tensor");
    for (auto* t : {&keys, &values})
        TORCH_CHECK(t->is_cuda() && t->scalar_type() == torch::kInt64 && t->dim() == 1, "keys/values: int64 pointers");
    for (auto* t : {&offsets, &begins, &ends})
        TORCH_CHECK(t->is_cuda() && t->scalar_type() == torch::kInt32 && t->numel() == keys.numel(),
                    "offsets/begins/ends: int32, one per chunk entry");
    const int H = q.size(0), B = q.size(1), n = keys.numel();
    auto f32 = q.options().dtype(torch::kFloat32);
    auto attns = torch::empty({rows * H, kDHead}, f32);
    auto maxs = torch::empty({rows * H}, f32);
    auto sums = torch::empty({rows * H}, f32);
    Globals g{
        .attns = gl<float, -1, -1, -1, -1>(attns.data_ptr<float>(), 1, 1, rows * H, kDHead),
        .maxs = gl<float, -1, -1, -1, -1>(maxs.data_ptr<float>(), 1, 1, 1, rows * H),
        .sums = gl<float, -1, -1, -1, -1>(sums.data_ptr<float>(), 1, 1, 1, rows * H),
        .offsets = gl<int, -1, -1, -1, -1>(offsets.data_ptr<int>(), 1, 1, 1, n),
        .begins = gl<int, -1, -1, -1, -1>(begins.data_ptr<int>(), 1, 1, 1, n),
        .ends = gl<int, -1, -1, -1, -1>(ends.data_ptr<int>(), 1, 1, 1, n),
        .Q = make_gl<Globals::Q_gl>(reinterpret_cast<uint64_t>(q.data_ptr()), 1, H, B, kDHead),
        .keys = reinterpret_cast<void**>(keys.data_ptr<int64_t>()),
        .values = reinterpret_cast<void**>(values.data_ptr<int64_t>()),
        .scale = 1.0f / sqrtf(float(kDHead)),
        .n_heads = H,
    };
    constexpr int rows_per_warp = kMaxSeqs / NUM_WARPS;
    size_t smem = sizeof(st<bf16, kChunk, kDHead>) + sizeof(st<bf16, kMaxSeqs, kDHead>) +
                  sizeof(st<float, rows_per_warp, kDHead>) * NUM_WARPS +
                  sizeof(sv<float, rows_per_warp>) * NUM_WARPS * 2 + 16384;
    smem = (smem + 4095) / 4096 * 4096;
    auto kernel = attn_chunk_first_tk<kMaxSeqs, kChunk, kDHead>;
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    TORCH_CHECK(err == cudaSuccess, "cudaFuncSetAttribute: ", cudaGetErrorString(err));
    kernel<<<dim3(H, n), BLOCK_SIZE, smem, reinterpret_cast<cudaStream_t>(stream)>>>(g);
    err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "attn_chunk_first_tk launch: ", cudaGetErrorString(err));
    return {attns, maxs, sums};
}
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("chunk_first", &chunk_first, "jacksontromero/chunk-attention-tk attn_chunk_first_tk<64, 64, 128>");
    m.attr("max_seqs") = kMaxSeqs;
}
