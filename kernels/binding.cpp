// kernels/binding.cpp -- the one torch extension binding: tensors -> pointers/strides, checks, launcher calls.
//
// Needs only torch/extension.h (no CUDA headers): it compiles with a CPU build of torch. Streams come from Python as
// integers (torch.cuda.current_stream().cuda_stream), so every op is CUDA-graph capturable.
//
// Sections: [helpers] [hydragen] [chunk_attn] [tree] [module]. A family's section is compiled only when its kernels are
// (src/tkprefix/build.py defines TKP_FAMILY_HYDRAGEN / TKP_FAMILY_CHUNK_ATTN / TKP_FAMILY_TREE for the families it
// builds), so the module links with any subset; `has_hydragen_ops` / `has_chunk_ops` / `has_tree_ops` say which it holds.
#include <torch/extension.h>
#include <pybind11/stl.h>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
#include "launch.h"
#include "chunk_attn/launch_chunk.h"
#include "tree/launch_tree.h"

namespace py = pybind11;

namespace {

// ============================================================================================ [helpers]
void raise_if(const char *err) {
    if (err) throw std::runtime_error(std::string("tkprefix kernel: ") + err);
}

int dtype_code(const at::Tensor &t, const char *name) {
    if (t.scalar_type() == at::kBFloat16) return TKP_BF16;
    if (t.scalar_type() == at::kHalf) return TKP_FP16;
    if (t.scalar_type() == at::kFloat) return TKP_FP32;
    throw std::invalid_argument(std::string(name) + ": dtype must be bfloat16, float16 or float32, got " +
                                std::string(c10::toString(t.scalar_type())));
}

void check_cuda(const at::Tensor &t, const char *name, const at::Tensor &ref) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.device() == ref.device(), name, " must be on the same device as q (", ref.device(), "), got ", t.device());
}

void check_bhsd(const at::Tensor &t, const char *name, int64_t D) {
    TORCH_CHECK(t.dim() == 4, name, " must be 4-D (batch, tokens, heads, head_dim), got ", t.dim(), "-D");
    TORCH_CHECK(t.size(3) == D, name, ": head_dim must be ", D, ", got ", t.size(3));
    TORCH_CHECK(t.stride(3) == 1, name, ": the head_dim stride must be 1");
}

// Output slots: o is (B, Nq, Hq, D) [one slot] or (S, B, Nq, Hq, D) [S slots], contiguous; lse likewise without D.
tkp_out make_out(const at::Tensor &o, const at::Tensor &lse, const at::Tensor &q, int64_t n_splits) {
    check_cuda(o, "o", q);
    check_cuda(lse, "lse", q);
    TORCH_CHECK(o.is_contiguous() && lse.is_contiguous(), "o and lse must be contiguous");
    TORCH_CHECK(lse.scalar_type() == at::kFloat, "lse must be float32");
    const bool slotted = o.dim() == 5;
    TORCH_CHECK(o.dim() == (slotted ? 5 : 4) && lse.dim() == o.dim() - 1, "o/lse: expected (S,)B,Nq,Hq(,D) shapes");
    const int64_t slots = slotted ? o.size(0) : 1;
    TORCH_CHECK(slots >= n_splits, "o/lse: ", n_splits, " splits need as many slots, got ", slots);
    for (int i = 0; i < 4; i++) TORCH_CHECK(o.size(o.dim() - 4 + i) == q.size(i), "o: shape must match q (B, Nq, Hq, D)");
    const int od = dtype_code(o, "o");
    TORCH_CHECK(od == TKP_FP32 || o.scalar_type() == q.scalar_type(), "o: dtype must be float32 or q's dtype");
    tkp_out out;
    out.o = o.data_ptr();
    out.lse = lse.data_ptr<float>();
    out.o_dtype = od;
    out.o_slot_stride = slotted ? o.stride(0) : 0;
    out.lse_slot_stride = slotted ? lse.stride(0) : 0;
    return out;
}

// For the plain (non-strided) launchers of the chunk_attn and tree families: bf16/fp16 codes, contiguous int32 lists.
int chunk_dtype(const at::Tensor &t, const char *name) {
    TORCH_CHECK(t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf, name,
                " must be bfloat16 or float16, got ", t.scalar_type());
    return t.scalar_type() == at::kBFloat16 ? TKP_DTYPE_BF16 : TKP_DTYPE_FP16;
}

void check(const at::Tensor &t, const char *name, at::ScalarType st, int dim) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.scalar_type() == st, name, " must be ", st, ", got ", t.scalar_type());
    TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.dim());
}

const int32_t *ids_ptr(const at::Tensor &t, const char *name) {
    check(t, name, at::kInt, 1);
    return t.numel() ? t.data_ptr<int32_t>() : nullptr;
}

// The checks of the merge bindings (chunk_merge, tree_merge): o (n_out, Hq, D); part_o of part_dtype (float32 for
// chunk_attn, o's dtype for the tree), part_lse float32; an int32 CSR of n_out + 1 offsets (offset_name) into int32
// partial rows (rows_name); lse (n_out, Hq) float32 or None. Returns lse's pointer (nullptr without lse); n_out_name
// names n_out in the messages.
float *check_merge(const at::Tensor &part_o, at::ScalarType part_dtype, const at::Tensor &part_lse,
                   const at::Tensor &offset, const char *offset_name, const at::Tensor &rows, const char *rows_name,
                   const at::Tensor &o, const std::optional<at::Tensor> &lse, const char *n_out_name) {
    check(o, "o", o.scalar_type(), 3);
    check(part_o, "part_o", part_dtype, 3);
    check(part_lse, "part_lse", at::kFloat, 2);
    check(offset, offset_name, at::kInt, 1);
    check(rows, rows_name, at::kInt, 1);
    TORCH_CHECK(offset.size(0) == o.size(0) + 1, offset_name, " must have ", n_out_name, " + 1 entries");
    if (!lse.has_value()) return nullptr;
    check(*lse, "lse", at::kFloat, 2);
    TORCH_CHECK(lse->size(0) == o.size(0) && lse->size(1) == o.size(1), "lse must be (", n_out_name, ", n_q_heads)");
    return lse->data_ptr<float>();
}

// ============================================================================================ [hydragen]
#ifdef TKP_FAMILY_HYDRAGEN
// q, k, v (B or Bp, tokens, heads, D) of one dtype and device; k and v of one shape
void check_qkv(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const char *k_name, const char *v_name) {
    TORCH_CHECK(q.is_cuda(), "q must be a CUDA tensor");
    const int64_t D = q.size(-1);
    check_bhsd(q, "q", D); check_bhsd(k, k_name, D); check_bhsd(v, v_name, D);
    check_cuda(k, k_name, q); check_cuda(v, v_name, q);
    TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), "q, ", k_name, ", ", v_name,
                " must share a dtype");
    TORCH_CHECK(k.sizes() == v.sizes(), k_name, " and ", v_name, " must have the same shape");
}

// seq_len: None, or contiguous int32 (B,) on q's device
const int32_t *seq_len_ptr(const c10::optional<at::Tensor> &seq_len, const at::Tensor &q) {
    if (!seq_len.has_value()) return nullptr;
    check_cuda(*seq_len, "seq_len", q);
    TORCH_CHECK(seq_len->scalar_type() == at::kInt && seq_len->dim() == 1 && seq_len->size(0) == q.size(0) &&
                    seq_len->is_contiguous(), "seq_len must be a contiguous int32 tensor of shape (B,)");
    return seq_len->data_ptr<int32_t>();
}

void prefix_launch(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const tkp_out &out,
                   int64_t n_splits, int64_t consumer_warpgroups, int64_t schedule, int64_t max_blocks,
                   const tkp_unique *unique, int64_t stream) {
    raise_if(tkp_prefix_attention(dtype_code(q, "q"), (int)q.size(3),
                                  q.data_ptr(), q.stride(0), q.stride(1), q.stride(2),
                                  k.data_ptr(), k.stride(0), k.stride(1), k.stride(2),
                                  v.data_ptr(), v.stride(0), v.stride(1), v.stride(2),
                                  (int)q.size(0), (int)q.size(1), (int)q.size(2), (int)k.size(0), (int)k.size(1),
                                  (int)k.size(2), (int)n_splits, (int)consumer_warpgroups, (int)schedule,
                                  (int)max_blocks, out, unique, reinterpret_cast<void *>(stream)));
}

void prefix_attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const at::Tensor &o,
                      const at::Tensor &lse, int64_t n_splits, int64_t consumer_warpgroups, int64_t schedule,
                      int64_t max_blocks, int64_t stream) {
    check_qkv(q, k, v, "k", "v");
    prefix_launch(q, k, v, make_out(o, lse, q, n_splits), n_splits, consumer_warpgroups, schedule, max_blocks, nullptr,
                  stream);
}

// The prefix (k, v) and the unique part (uk, uv: (B, S, Hkv, D), seq_len) in one kernel: fp32 slots o/lse for the
// prefix's n_splits, u_o/u_lse (one slot) for the unique part.
void prefix_decode_attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const at::Tensor &o,
                             const at::Tensor &lse, int64_t n_splits, int64_t schedule, int64_t max_blocks,
                             const at::Tensor &uk, const at::Tensor &uv, const c10::optional<at::Tensor> &seq_len,
                             const at::Tensor &u_o, const at::Tensor &u_lse, int64_t stream) {
    check_qkv(q, k, v, "k", "v");
    check_qkv(q, uk, uv, "uk", "uv");
    TORCH_CHECK(uk.size(0) == q.size(0), "uk: batch must match q's");
    TORCH_CHECK(uk.size(2) == k.size(2), "uk: kv heads must match k's");
    tkp_unique unique{};
    unique.k = uk.data_ptr(); unique.v = uv.data_ptr();
    unique.k_sb = uk.stride(0); unique.k_ss = uk.stride(1); unique.k_sh = uk.stride(2);
    unique.v_sb = uv.stride(0); unique.v_ss = uv.stride(1); unique.v_sh = uv.stride(2);
    unique.seq_len = seq_len_ptr(seq_len, q);
    unique.S = (int)uk.size(1);
    unique.out = make_out(u_o, u_lse, q, 1);
    prefix_launch(q, k, v, make_out(o, lse, q, n_splits), n_splits, 2, schedule, max_blocks, &unique, stream);
}

void prefix_set_trace(int64_t buffer) { raise_if(tkp_prefix_set_trace(reinterpret_cast<void *>(buffer))); }

void decode_attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                      const c10::optional<at::Tensor> &seq_len, const at::Tensor &o, const at::Tensor &lse,
                      int64_t n_splits, int64_t split_keys, const c10::optional<at::Tensor> &merge_o,
                      const c10::optional<at::Tensor> &merge_lse, int64_t stream, bool pdl) {
    check_qkv(q, k, v, "k", "v");
    const int64_t D = q.size(-1);
    TORCH_CHECK(k.size(0) == q.size(0), "k: batch must match q's");
    const int32_t *sl = seq_len_ptr(seq_len, q);
    const tkp_out out = make_out(o, lse, q, n_splits);
    tkp_segment pre{};   // fp32 slots (S, B, Nq, Hq, D) / (S, B, Nq, Hq) merged in before the write
    TORCH_CHECK(merge_o.has_value() == merge_lse.has_value(), "merge_o and merge_lse go together");
    if (merge_o.has_value()) {
        const at::Tensor &mo = *merge_o, &ml = *merge_lse;
        check_cuda(mo, "merge_o", q); check_cuda(ml, "merge_lse", q);
        TORCH_CHECK(mo.scalar_type() == at::kFloat && ml.scalar_type() == at::kFloat, "merge_o/merge_lse must be float32");
        TORCH_CHECK(mo.is_contiguous() && ml.is_contiguous() && mo.dim() == 5 && ml.dim() == 4 &&
                        mo.size(0) == ml.size(0), "merge_o (S, B, Nq, Hq, D) / merge_lse (S, B, Nq, Hq), contiguous");
        for (int i = 0; i < 3; i++)
            TORCH_CHECK(mo.size(i + 1) == q.size(i) && ml.size(i + 1) == q.size(i), "merge_o/merge_lse: shapes must match q");
        TORCH_CHECK(mo.size(4) == q.size(3), "merge_o: head_dim must match q");
        pre.o = mo.data_ptr(); pre.lse = ml.data_ptr<float>(); pre.n_slots = (int)mo.size(0); pre.o_dtype = TKP_FP32;
        pre.o_slot_stride = mo.stride(0); pre.lse_slot_stride = ml.stride(0);
    }
    raise_if(tkp_decode_attention(dtype_code(q, "q"), (int)D,
                                  q.data_ptr(), q.stride(0), q.stride(1), q.stride(2),
                                  k.data_ptr(), k.stride(0), k.stride(1), k.stride(2),
                                  v.data_ptr(), v.stride(0), v.stride(1), v.stride(2), sl,
                                  (int)q.size(0), (int)q.size(1), (int)q.size(2), (int)k.size(1), (int)k.size(2),
                                  (int)n_splits, (int)split_keys, pre.n_slots > 0 ? &pre : nullptr, out, (int)pdl,
                                  reinterpret_cast<void *>(stream)));
}

// segments: list of (o, lse) where o is (rows..., D) [1 slot] or (S, rows..., D) [S slots] and lse drops D.
void merge_slots(const std::vector<std::pair<at::Tensor, at::Tensor>> &segments, const at::Tensor &o_out,
                 const at::Tensor &lse_out, int64_t stream, bool pdl) {
    TORCH_CHECK(o_out.is_cuda() && o_out.is_contiguous() && lse_out.is_contiguous(), "o_out/lse_out: contiguous CUDA tensors");
    TORCH_CHECK(lse_out.scalar_type() == at::kFloat, "lse_out must be float32");
    TORCH_CHECK(!segments.empty() && segments.size() <= TKP_MAX_SEGMENTS, "merge: 1..", TKP_MAX_SEGMENTS, " segments");
    const int64_t D = o_out.size(-1);
    const int64_t rows = lse_out.numel();
    TORCH_CHECK(o_out.numel() == rows * D, "o_out must hold lse_out.numel() rows of head_dim");
    std::vector<tkp_segment> segs;
    for (const auto &[o, lse] : segments) {
        check_cuda(o, "merge o", o_out); check_cuda(lse, "merge lse", o_out);
        TORCH_CHECK(o.is_contiguous() && lse.is_contiguous(), "merge inputs must be contiguous");
        TORCH_CHECK(lse.scalar_type() == at::kFloat, "merge lse must be float32");
        const bool slotted = o.dim() == o_out.dim() + 1;
        TORCH_CHECK(o.dim() == (slotted ? o_out.dim() + 1 : o_out.dim()) && lse.dim() == o.dim() - 1,
                    "merge: each o is o_out's shape with an optional leading slot dim; lse drops head_dim");
        const int64_t slots = slotted ? o.size(0) : 1;
        TORCH_CHECK(o.numel() == slots * rows * D && lse.numel() == slots * rows, "merge: input sizes must match o_out");
        tkp_segment s;
        s.o = o.data_ptr(); s.lse = lse.data_ptr<float>(); s.n_slots = (int)slots; s.o_dtype = dtype_code(o, "merge o");
        s.o_slot_stride = rows * D; s.lse_slot_stride = rows;
        segs.push_back(s);
    }
    raise_if(tkp_merge_slots(dtype_code(o_out, "o_out"), (int)D, rows, segs.data(), (int)segs.size(), o_out.data_ptr(),
                             lse_out.data_ptr<float>(), (int)pdl, reinterpret_cast<void *>(stream)));
}

#endif  // TKP_FAMILY_HYDRAGEN

// ============================================================================================ [chunk_attn]
// Shapes and meaning: kernels/chunk_attn/launch_chunk.h.
//   chunk_attend(q, k_pool, v_pool, items, cf_chunks, priv_chunks, priv_lens, part_o, part_lse, consumers, stream,
//                max_blocks=0) -> None
//   chunk_merge(part_o, part_lse, merge_offset, merge_rows, o, lse, stream) -> None   (lse may be None)
#ifdef TKP_FAMILY_CHUNK_ATTN
void chunk_attend(const at::Tensor &q, const at::Tensor &k_pool, const at::Tensor &v_pool, const at::Tensor &items,
                  const at::Tensor &cf_chunks, const at::Tensor &priv_chunks, const at::Tensor &priv_lens,
                  const at::Tensor &part_o, const at::Tensor &part_lse, int64_t consumers, int64_t stream,
                  int64_t max_blocks) {
    check(q, "q", q.scalar_type(), 3);
    const int dt = chunk_dtype(q, "q");
    check(k_pool, "k_pool", q.scalar_type(), 4);
    check(v_pool, "v_pool", q.scalar_type(), 4);
    TORCH_CHECK(k_pool.sizes() == v_pool.sizes(), "k_pool and v_pool must have the same shape");
    check(items, "items", at::kInt, 2);
    TORCH_CHECK(items.size(1) == TKP_CHUNK_ITEM_INTS, "items must have ", TKP_CHUNK_ITEM_INTS, " columns");
    TORCH_CHECK(priv_chunks.numel() == priv_lens.numel(), "priv_chunks and priv_lens must have the same length");
    check(part_o, "part_o", at::kFloat, 3);
    check(part_lse, "part_lse", at::kFloat, 2);
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

void chunk_merge(const at::Tensor &part_o, const at::Tensor &part_lse, const at::Tensor &merge_offset,
                 const at::Tensor &merge_rows, const at::Tensor &o, const std::optional<at::Tensor> &lse,
                 int64_t stream) {
    float *lse_ptr = check_merge(part_o, at::kFloat, part_lse, merge_offset, "merge_offset", merge_rows,
                                 "merge_rows", o, lse, "n_seqs");
    const int dt = chunk_dtype(o, "o");
    raise_if(tkp_chunk_merge(dt, (int)o.size(2), (int)o.size(0), (int)o.size(1), part_o.data_ptr<float>(),
                             part_lse.data_ptr<float>(), merge_offset.data_ptr<int32_t>(),
                             merge_rows.numel() ? merge_rows.data_ptr<int32_t>() : nullptr, o.data_ptr(),
                             lse_ptr, reinterpret_cast<void *>(stream)));
}

#endif  // TKP_FAMILY_CHUNK_ATTN

// ============================================================================================ [tree]
// Shapes and meaning: kernels/tree/launch_tree.h; the plan tensors are a TreePlan's (src/tkprefix/tree_plan.py).
//   tree_attend(q, k_pool, v_pool, item_row_start, item_row_end, item_seg_offset, item_partial_offset, mma_units,
//               seg_page, seg_slot, seg_len, page_table, part_o, part_lse, n_mma_items, decode_pass_rows, consumers,
//               stream, max_blocks=0) -> None   (items [0, n_mma_items) on the wgmma kernel as the units of
//               mma_units, the rest on the decode kernel)
//   tree_merge(part_o, part_lse, leaf_partial_offset, leaf_partial_index, o, lse, stream) -> None   (lse may be None)
#ifdef TKP_FAMILY_TREE
void tree_attend(const at::Tensor &q, const at::Tensor &k_pool, const at::Tensor &v_pool,
                 const at::Tensor &item_row_start, const at::Tensor &item_row_end, const at::Tensor &item_seg_offset,
                 const at::Tensor &item_partial_offset, const at::Tensor &mma_units, const at::Tensor &seg_page,
                 const at::Tensor &seg_slot,
                 const at::Tensor &seg_len, const at::Tensor &page_table, const at::Tensor &part_o,
                 const at::Tensor &part_lse, int64_t n_mma_items, int64_t decode_pass_rows, int64_t consumers,
                 int64_t stream,
                 int64_t max_blocks) {
    check(q, "q", q.scalar_type(), 3);
    const int dt = chunk_dtype(q, "q");
    check(k_pool, "k_pool", q.scalar_type(), 4);
    check(v_pool, "v_pool", q.scalar_type(), 4);
    TORCH_CHECK(k_pool.sizes() == v_pool.sizes(), "k_pool and v_pool must have the same shape");
    TORCH_CHECK(k_pool.device() == q.device() && v_pool.device() == q.device(), "k_pool and v_pool must be on q's device");
    const int64_t d = q.size(2), hq = q.size(1), hkv = k_pool.size(1), n_items = item_row_start.numel();
    TORCH_CHECK(k_pool.size(3) == d, "k_pool head_dim ", k_pool.size(3), " != q head_dim ", d);
    TORCH_CHECK(item_row_end.numel() == n_items && item_partial_offset.numel() == n_items,
                "item_row_end and item_partial_offset must have n_items = item_row_start.numel() = ", n_items,
                " entries, got ", item_row_end.numel(), " and ", item_partial_offset.numel());
    TORCH_CHECK(item_seg_offset.numel() == n_items + 1, "item_seg_offset must have n_items + 1 = ", n_items + 1,
                " entries, got ", item_seg_offset.numel());
    TORCH_CHECK(seg_slot.numel() == seg_page.numel() && seg_len.numel() == seg_page.numel(),
                "seg_page, seg_slot and seg_len must have the same length");
    check(part_o, "part_o", q.scalar_type(), 3);  // partials in q's dtype (the merge accumulates in float32)
    check(part_lse, "part_lse", at::kFloat, 2);
    TORCH_CHECK(part_o.size(1) == hq && part_o.size(2) == d, "part_o must be (n_partials, ", hq, ", ", d, ")");
    TORCH_CHECK(part_lse.size(0) == part_o.size(0) && part_lse.size(1) == hq, "part_lse must be (n_partials, ", hq, ")");
    check(mma_units, "mma_units", at::kInt, 2);
    TORCH_CHECK(mma_units.size(1) == 4, "mma_units must be (n_mma_units, 4): item, kv-head, row_begin, row_end");
    for (const at::Tensor *t : {&item_row_start, &item_row_end, &item_seg_offset, &item_partial_offset, &mma_units,
                                &seg_page, &seg_slot, &seg_len, &page_table, &part_o, &part_lse})
        TORCH_CHECK(t->device() == q.device(), "the plan tensors and part_o/part_lse must be on q's device");
    TORCH_CHECK(n_mma_items >= 0 && n_mma_items <= n_items, "n_mma_items must be in [0, n_items = ", n_items,
                "], got ", n_mma_items);
    raise_if(tkp_tree_attend(dt, (int)d, (int)consumers, q.data_ptr(), k_pool.data_ptr(), v_pool.data_ptr(),
                             (int)k_pool.size(0), (int)hkv, (int)k_pool.size(2), (int)hq,
                             ids_ptr(item_row_start, "item_row_start"), ids_ptr(item_row_end, "item_row_end"),
                             ids_ptr(item_seg_offset, "item_seg_offset"),
                             ids_ptr(item_partial_offset, "item_partial_offset"), (int)n_items, (int)n_mma_items,
                             mma_units.numel() ? mma_units.data_ptr<int32_t>() : nullptr, (int)mma_units.size(0),
                             (int)decode_pass_rows,
                             ids_ptr(seg_page, "seg_page"), ids_ptr(seg_slot, "seg_slot"), ids_ptr(seg_len, "seg_len"),
                             ids_ptr(page_table, "page_table"), part_o.data_ptr(), part_lse.data_ptr<float>(),
                             (int)max_blocks, reinterpret_cast<void *>(stream)));
}

void tree_merge(const at::Tensor &part_o, const at::Tensor &part_lse, const at::Tensor &leaf_partial_offset,
                const at::Tensor &leaf_partial_index, const at::Tensor &o, const std::optional<at::Tensor> &lse,
                int64_t stream) {
    float *lse_ptr = check_merge(part_o, o.scalar_type(), part_lse, leaf_partial_offset, "leaf_partial_offset",
                                 leaf_partial_index, "leaf_partial_index", o, lse, "n_rows");
    const int dt = chunk_dtype(o, "o");
    TORCH_CHECK(part_o.size(1) == o.size(1) && part_o.size(2) == o.size(2), "part_o must be (n_partials, Hq, D) of o");
    TORCH_CHECK(part_lse.size(0) == part_o.size(0) && part_lse.size(1) == o.size(1), "part_lse must be (n_partials, Hq)");
    raise_if(tkp_tree_merge(dt, (int)o.size(2), (int)o.size(0), (int)o.size(1), part_o.data_ptr(),
                            part_lse.data_ptr<float>(), leaf_partial_offset.data_ptr<int32_t>(),
                            leaf_partial_index.numel() ? leaf_partial_index.data_ptr<int32_t>() : nullptr,
                            o.data_ptr(), lse_ptr, reinterpret_cast<void *>(stream)));
}

#endif  // TKP_FAMILY_TREE

}  // namespace

// ============================================================================================ [module]
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "tkprefix ThunderKittens kernels (sm_90): Hydragen prefix/decode/merge, ChunkAttention, tree attention";
#ifdef TKP_FAMILY_HYDRAGEN
    m.def("prefix_attention", &prefix_attention, "Hydragen prefix attention into o/lse slots",
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("o"), py::arg("lse"), py::arg("n_splits"),
          py::arg("consumer_warpgroups"), py::arg("schedule"), py::arg("max_blocks"), py::arg("stream"));
    m.def("prefix_decode_attention", &prefix_decode_attention,
          "Hydragen prefix attention with the suffix decode in the same kernel, both into fp32 slots",
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("o"), py::arg("lse"), py::arg("n_splits"),
          py::arg("schedule"), py::arg("max_blocks"), py::arg("uk"), py::arg("uv"), py::arg("seq_len"),
          py::arg("u_o"), py::arg("u_lse"), py::arg("stream"));
    m.def("prefix_set_trace", &prefix_set_trace,
          "diagnostic: per-item timestamps of the prefix kernel into a CUDA buffer (0: off)", py::arg("buffer"));
    m.def("decode_attention", &decode_attention, "per-sequence decode attention into o/lse slots",
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("seq_len"), py::arg("o"), py::arg("lse"),
          py::arg("n_splits"), py::arg("split_keys"), py::arg("merge_o"), py::arg("merge_lse"), py::arg("stream"),
          py::arg("pdl") = false);
    m.def("merge_slots", &merge_slots, "exact LSE merge of partial (o, lse) slots",
          py::arg("segments"), py::arg("o_out"), py::arg("lse_out"), py::arg("stream"), py::arg("pdl") = false);
    m.def("num_sms", &tkp_num_sms, "multiprocessor count of the current device");
    m.attr("has_hydragen_ops") = py::bool_(true);
#else
    m.attr("has_hydragen_ops") = py::bool_(false);
#endif
#ifdef TKP_FAMILY_CHUNK_ATTN
    m.def("chunk_attend", &chunk_attend, "ChunkAttention attend phase (chunk-first / sequence-first items)",
          py::arg("q"), py::arg("k_pool"), py::arg("v_pool"), py::arg("items"), py::arg("cf_chunks"),
          py::arg("priv_chunks"), py::arg("priv_lens"), py::arg("part_o"), py::arg("part_lse"), py::arg("consumers"),
          py::arg("stream"), py::arg("max_blocks") = 0);
    m.def("chunk_merge", &chunk_merge, "ChunkAttention LSE merge of partial rows into o",
          py::arg("part_o"), py::arg("part_lse"), py::arg("merge_offset"), py::arg("merge_rows"), py::arg("o"),
          py::arg("lse"), py::arg("stream"));
    m.attr("has_chunk_ops") = py::bool_(true);
#else
    m.attr("has_chunk_ops") = py::bool_(false);
#endif
#ifdef TKP_FAMILY_TREE
    m.def("tree_attend", &tree_attend, "tree attention: (o, lse) partials of a TreePlan's work list",
          py::arg("q"), py::arg("k_pool"), py::arg("v_pool"), py::arg("item_row_start"), py::arg("item_row_end"),
          py::arg("item_seg_offset"), py::arg("item_partial_offset"), py::arg("mma_units"), py::arg("seg_page"),
          py::arg("seg_slot"),
          py::arg("seg_len"), py::arg("page_table"), py::arg("part_o"), py::arg("part_lse"), py::arg("n_mma_items"),
          py::arg("decode_pass_rows"), py::arg("consumers"),
          py::arg("stream"), py::arg("max_blocks") = 0);
    m.def("tree_merge", &tree_merge, "tree attention: LSE merge of each leaf row's partials into o",
          py::arg("part_o"), py::arg("part_lse"), py::arg("leaf_partial_offset"), py::arg("leaf_partial_index"),
          py::arg("o"), py::arg("lse"), py::arg("stream"));
    m.attr("has_tree_ops") = py::bool_(true);
#else
    m.attr("has_tree_ops") = py::bool_(false);
#endif
}
