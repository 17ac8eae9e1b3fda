// pybind11/torch binding of the ChunkAttention launchers (launch_chunk.h). Needs only torch/extension.h.
// The lead's kernels/binding.cpp calls register_chunk_ops(m) from its PYBIND11_MODULE.
//
//   chunk_attend(q, k_pool, v_pool, items, cf_chunks, priv_chunks, priv_lens, part_o, part_lse, consumers, stream,
//                max_blocks=0) -> None
//   chunk_merge(part_o, part_lse, merge_offset, merge_rows, o, lse, stream) -> None   (lse may be None)
// Shapes and meaning: launch_chunk.h. `stream` is torch.cuda.current_stream().cuda_stream (an int), which keeps the
// calls CUDA-graph capturable.
#include <torch/extension.h>
#include <optional>
#include <string>

#include "launch_chunk.h"

namespace {

int dtype_code(const torch::Tensor &t, const char *name) {
    if (t.scalar_type() == torch::kBFloat16) return TKP_DTYPE_BF16;
    if (t.scalar_type() == torch::kHalf) return TKP_DTYPE_FP16;
    TORCH_CHECK(false, name, " must be bfloat16 or float16, got ", t.scalar_type());
}

void check(const torch::Tensor &t, const char *name, torch::ScalarType st, int dim) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.scalar_type() == st, name, " must be ", st, ", got ", t.scalar_type());
    TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.dim());
}

void raise_if(const char *err) { TORCH_CHECK(err == nullptr, err); }

const int32_t *ids_ptr(const torch::Tensor &t, const char *name) {
    check(t, name, torch::kInt32, 1);
    return t.numel() ? t.data_ptr<int32_t>() : nullptr;
}

void chunk_attend(torch::Tensor q, torch::Tensor k_pool, torch::Tensor v_pool, torch::Tensor items,
                  torch::Tensor cf_chunks, torch::Tensor priv_chunks, torch::Tensor priv_lens, torch::Tensor part_o, torch::Tensor part_lse, int64_t consumers,
                  int64_t stream, int64_t max_blocks) {
    check(q, "q", q.scalar_type(), 3);
    const int dt = dtype_code(q, "q");
    check(k_pool, "k_pool", q.scalar_type(), 4);
    check(v_pool, "v_pool", q.scalar_type(), 4);
    TORCH_CHECK(k_pool.sizes() == v_pool.sizes(), "k_pool and v_pool must have the same shape");
    check(items, "items", torch::kInt32, 2);
    TORCH_CHECK(items.size(1) == TKP_CHUNK_ITEM_INTS, "items must have ", TKP_CHUNK_ITEM_INTS, " columns");
    TORCH_CHECK(priv_chunks.numel() == priv_lens.numel(), "priv_chunks and priv_lens must have the same length");
    check(part_o, "part_o", torch::kFloat32, 3);
    check(part_lse, "part_lse", torch::kFloat32, 2);
    const int64_t d = q.size(2), hq = q.size(1), hkv = k_pool.size(1);
    TORCH_CHECK(k_pool.size(3) == d, "k_pool head_dim ", k_pool.size(3), " != q head_dim ", d);
    TORCH_CHECK(part_o.size(1) == hq && part_o.size(2) == d, "part_o must be (rows, ", hq, ", ", d, ")");
    TORCH_CHECK(part_lse.size(0) == part_o.size(0) && part_lse.size(1) == hq, "part_lse must be (rows, ", hq, ")");
    raise_if(tkp_chunk_attend(dt, (int)d, (int)k_pool.size(2), (int)consumers, q.data_ptr(), k_pool.data_ptr(),
                              v_pool.data_ptr(), (int)k_pool.size(0), (int)hkv, (int)hq, items.data_ptr<int32_t>(),
                              (int)items.size(0), ids_ptr(cf_chunks, "cf_chunks"),
                              ids_ptr(priv_chunks, "priv_chunks"), ids_ptr(priv_lens, "priv_lens"),
                              part_o.data_ptr<float>(), part_lse.data_ptr<float>(), (int)max_blocks,
                              reinterpret_cast<void *>(stream)));
}

void chunk_merge(torch::Tensor part_o, torch::Tensor part_lse, torch::Tensor merge_offset, torch::Tensor merge_rows,
                 torch::Tensor o, std::optional<torch::Tensor> lse, int64_t stream) {
    check(o, "o", o.scalar_type(), 3);
    const int dt = dtype_code(o, "o");
    check(part_o, "part_o", torch::kFloat32, 3);
    check(part_lse, "part_lse", torch::kFloat32, 2);
    check(merge_offset, "merge_offset", torch::kInt32, 1);
    check(merge_rows, "merge_rows", torch::kInt32, 1);
    TORCH_CHECK(merge_offset.size(0) == o.size(0) + 1, "merge_offset must have n_seqs + 1 entries");
    float *lse_ptr = nullptr;
    if (lse.has_value()) {
        check(*lse, "lse", torch::kFloat32, 2);
        TORCH_CHECK(lse->size(0) == o.size(0) && lse->size(1) == o.size(1), "lse must be (n_seqs, n_q_heads)");
        lse_ptr = lse->data_ptr<float>();
    }
    raise_if(tkp_chunk_merge(dt, (int)o.size(2), (int)o.size(0), (int)o.size(1), part_o.data_ptr<float>(),
                             part_lse.data_ptr<float>(), merge_offset.data_ptr<int32_t>(),
                             merge_rows.numel() ? merge_rows.data_ptr<int32_t>() : nullptr, o.data_ptr(),
                             lse_ptr, reinterpret_cast<void *>(stream)));
}

}  // namespace

void register_chunk_ops(pybind11::module_ &m) {
    m.def("chunk_attend", &chunk_attend, "ChunkAttention attend phase (chunk-first / sequence-first items)",
          pybind11::arg("q"), pybind11::arg("k_pool"), pybind11::arg("v_pool"), pybind11::arg("items"),
          pybind11::arg("cf_chunks"), pybind11::arg("priv_chunks"), pybind11::arg("priv_lens"), pybind11::arg("part_o"), pybind11::arg("part_lse"), pybind11::arg("consumers"),
          pybind11::arg("stream"), pybind11::arg("max_blocks") = 0);
    m.def("chunk_merge", &chunk_merge, "ChunkAttention LSE merge of partial rows into o",
          pybind11::arg("part_o"), pybind11::arg("part_lse"), pybind11::arg("merge_offset"),
          pybind11::arg("merge_rows"), pybind11::arg("o"), pybind11::arg("lse"), pybind11::arg("stream"));
}
