// Plain-C launchers of the tree attention kernels (kernels/tree/tree.cu): the work list of a TreePlan
// (src/tkprefix/tree_plan.py; docs/design.md, "Tree attention"), executed over a paged pool.
//
// Only pointers, ints and a stream cross this boundary (kernels/launch.h says why); the binding's [tree] section
// (kernels/binding.cpp) passes the TreePlan's int32 tensors as they are (src/tkprefix/tk_tree.py).
//
// Pool: k_pool, v_pool (n_pages, n_kv_heads, page_size, d_head) of dtype, contiguous; q (n_rows, n_q_heads, d_head).
// Work: items [0, n_mma_items) run on the persistent wgmma kernel, as the units of mma_units ((n_mma_units, 4) int32,
//   16-byte aligned: item, kv-head h, stacked rows [row_begin, row_end) of the item), taken in that order (the plan's:
//   descending cost); together they cover every (item, kv-head, stacked row) of those items once. Items
//   [n_mma_items, n_items) run on the decode kernel, a unit u = (item n_mma_items + u / n_kv_heads, kv-head
//   u % n_kv_heads) a warp (items of a few stacked rows; any row count is correct, in groups of decode_pass_rows = 1
//   or 2 rows: 1 unrolls deeper, for plans whose decode items all have one stacked row).
//   item i: leaf rows [item_row_start[i], item_row_end[i]); its stacked query rows are e = 0 .. (rows * G) - 1,
//           e -> (leaf row item_row_start[i] + e / G, q-head h * G + e % G), G = n_q_heads / n_kv_heads;
//           its keys are the tokens of segments item_seg_offset[i] .. item_seg_offset[i + 1] - 1 in order;
//           stacked row e writes partial row item_partial_offset[i] + e / G, q-head h * G + e % G.
//   segment s: token t (0 <= t < seg_len[s]) is slot (seg_slot[s] + t) % page_size of pool page
//           page_table[seg_page[s] + (seg_slot[s] + t) / page_size].
//   part_o (n_partials, n_q_heads, d_head) of dtype (q's: half the bytes of float32, the merge accumulates in float32),
//   part_lse float32 (n_partials, n_q_heads), natural log.
// Merge: leaf row r combines partial rows leaf_partial_index[leaf_partial_offset[r] .. leaf_partial_offset[r + 1]).
//
// Every launcher returns nullptr on success, else a (static or thread-local) message naming what failed.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// (o, lse) partials of every unit. dtype: TKP_BF16 or TKP_FP16 (kernels/launch.h); d_head 64 or 128; consumers 1 or
// 2 (64 or 128 stacked rows per pass; a unit with more rows loops over row blocks, re-reading its KV); any
// page_size >= 1 (keys are gathered token by token through the page table). max_blocks <= 0: a persistent grid of
// as many blocks as fit on the GPU; > 0 caps the grid.
const char *tkp_tree_attend(int dtype, int d_head, int consumers,
                            const void *q, const void *k_pool, const void *v_pool,
                            int n_pages, int n_kv_heads, int page_size, int n_q_heads,
                            const int32_t *item_row_start, const int32_t *item_row_end,
                            const int32_t *item_seg_offset, const int32_t *item_partial_offset, int n_items,
                            int n_mma_items, const int32_t *mma_units, int n_mma_units, int decode_pass_rows, const int32_t *seg_page, const int32_t *seg_slot, const int32_t *seg_len,
                            const int32_t *page_table, void *part_o, float *part_lse, int max_blocks,
                            void *stream);

// o (n_rows, n_q_heads, d_head) of dtype = LSE merge of each leaf row's partial rows; lse (n_rows, n_q_heads)
// float32 if not null. A row with no partial gets o = 0, lse = -inf (a TreePlan gives every leaf at least one).
const char *tkp_tree_merge(int dtype, int d_head, int n_rows, int n_q_heads,
                           const void *part_o, const float *part_lse,
                           const int32_t *leaf_partial_offset, const int32_t *leaf_partial_index,
                           void *o, float *lse, void *stream);

#ifdef __cplusplus
}
#endif
