// Plain-C launchers of the ChunkAttention kernels (kernels/chunk_attn/chunk_attn.cu).
//
// Only pointers, ints and a stream cross this boundary, so the binding (kernels/binding.cpp, section [chunk_attn])
// needs no CUDA header and the .cu needs no torch header (see docs/design.md, "Why a plain-C launcher header").
//
// Work description (built on the host by src/tkprefix/tk_chunk.py from a ChunkPlan, once per plan):
//   items  int32 (n_items, TKP_CHUNK_ITEM_INTS): one thread block per (item, kv-head):
//            [seq_begin, row_begin, n_rows, chunk_begin, n_chunks, out_base, kind]
//          The item's query rows are r = row_begin .. row_begin + n_rows - 1 of the enumeration
//          r -> (sequence seq_begin + r / G, q-head kv_head * G + r % G), G = n_q_heads / n_kv_heads;
//          its keys are the chunks [chunk_begin, chunk_begin + n_chunks) of cf_chunks (kind 0: full chunks, the
//          chunk-first phase) or of priv_chunks with valid lengths priv_lens (kind 1: the sequence-first phase;
//          these are the plan's own private_chunk / private_len tensors, read live so that a token appended in place
//          needs no re-plan and a captured CUDA graph sees it); it writes partial row out_base + r / G.
//   part_o float32 (n_partial_rows, n_q_heads, d_head), part_lse float32 (n_partial_rows, n_q_heads), natural log.
// Merge: merge_offset int32 (n_seqs + 1) CSR into merge_rows int32: the partial rows of each sequence.
//
// Every launcher returns nullptr on success, else a (static or thread-local) message naming what failed, as the
// launchers of kernels/launch.h do.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TKP_CHUNK_ITEM_INTS 7
#define TKP_DTYPE_BF16 0
#define TKP_DTYPE_FP16 1

// Attention of each item's query rows against its chunks, read in place from the pool
// k_pool, v_pool: (capacity_chunks, n_kv_heads, chunk_size, d_head) of dtype. q: (n_seqs, n_q_heads, d_head).
// consumers: 1 (items of <= 64 rows) or 2 (items of <= 128 rows). chunk_size: 64. d_head: 64 or 128.
// The grid is persistent: max_blocks <= 0 launches as many blocks as fit on the GPU at once (each then runs units
// (item, kv-head) b, b + grid, ...; items should come longest first); max_blocks > 0 caps the grid there instead.
const char *tkp_chunk_attend(int dtype, int d_head, int chunk_size, int consumers,
                             const void *q, const void *k_pool, const void *v_pool,
                             int capacity_chunks, int n_kv_heads, int n_q_heads,
                             const int32_t *items, int n_items, const int32_t *cf_chunks,
                             const int32_t *priv_chunks, const int32_t *priv_lens,
                             float *part_o, float *part_lse, int max_blocks, void *stream);

// o (n_seqs, n_q_heads, d_head) of dtype = LSE merge of each sequence's partial rows; lse (n_seqs, n_q_heads)
// float32 if not null. A sequence with no partial rows gets o = 0, lse = -inf.
const char *tkp_chunk_merge(int dtype, int d_head, int n_seqs, int n_q_heads,
                            const float *part_o, const float *part_lse,
                            const int32_t *merge_offset, const int32_t *merge_rows,
                            void *o, float *lse, void *stream);

#ifdef __cplusplus
}
#endif
