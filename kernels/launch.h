// kernels/launch.h -- plain-C launcher declarations: the only thing the bindings see.
//
// Why plain C: the binding (kernels/binding.cpp) then needs only torch/extension.h, no CUDA headers, so it compiles
// with a CPU build of torch; the .cu files need only TK + CUDA, so `nvcc -c` compiles them anywhere (docs/design.md).
// Streams travel as `void*` (a cudaStream_t), taken from torch.cuda.current_stream() in Python, which keeps every
// launch CUDA-graph capturable. Every launcher returns nullptr on success, or a static/thread-local message naming
// what failed (a bad argument or the CUDA error of the launch); the binding turns it into a Python RuntimeError.
//
// Sections: [common types] [hydragen] -- the chunk_attn family declares its launchers in
// kernels/chunk_attn/launch_chunk.h; the one binding, kernels/binding.cpp, includes both.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ============================================================================================ [common types]
enum tkp_dtype { TKP_BF16 = 0, TKP_FP16 = 1, TKP_FP32 = 2 };

// Where an attention kernel writes (o, lse). Rows are numbered r = (b*Nq + n)*Hq + hq, i.e. the contiguous
// (B, Nq, Hq, D) output layout. A kernel that splits its key range into S parts writes part s into "slot" s:
//   o   + s*o_slot_stride   + r*D   (elements of o_dtype)
//   lse + s*lse_slot_stride + r     (float32, natural log)
// o_dtype is the input dtype for a final result (then S must be 1), or TKP_FP32 for partial results that a
// merge (tkp_merge_slots) combines later. An empty key set writes o = 0, lse = -inf.
typedef struct {
    void   *o;
    float  *lse;
    int     o_dtype;
    int64_t o_slot_stride;
    int64_t lse_slot_stride;
} tkp_out;

// A run of n_slots partial states laid out as in tkp_out (o of dtype o_dtype), read by a merge.
#define TKP_MAX_SEGMENTS 8
typedef struct {
    const void  *o;
    const float *lse;
    int          n_slots;
    int          o_dtype;
    int64_t      o_slot_stride;
    int64_t      lse_slot_stride;
} tkp_segment;

// ============================================================================================ [hydragen]
// Non-causal attention of every query of the sequences sharing a prefix against that prefix (kernels/hydragen/prefix.cu).
// q (B, Nq, Hq, D) and k, v (Bp, P, Hkv, D) given by strides in elements (the D stride must be 1; k/v strides and base
// pointers 16-byte aligned, as TMA needs). Sequence b uses prefix row b / (B/Bp). Requires B % Bp == 0, Hq % Hkv == 0
// (any ratio: query rows are gathered by address), D in {64, 128}, P >= 1. The key range is split into n_splits parts
// of whole 128-key tiles (1 <= n_splits <= ceil(P/128); part s writes slot s of `out`). consumer_warpgroups (2 or 3)
// sets the query rows per block (128 or 192). schedule (2 only): bit 0 ping-pong (the two warpgroups alternate their
// Q K^T issue), bit 1 the overlapped loop (Q K^T of tile t with P V of tile t-1). max_blocks > 0 caps the grid: each
// block then loops over (row block, prefix row, kv-head, split) work items. o 16-byte aligned, lse 4-byte aligned.
// unique (nullptr: none): the suffix decode run by a fourth warpgroup of the same blocks (prefix_decode.cuh), for
// D 128, consumer_warpgroups 2, schedule 0 or 1 and Nq * Hq/Hkv <= 16; both parts then write fp32 slots (a merge
// joins them): the unique part slot 0 of its `out` (o_slot_stride unused), over per-sequence caches k, v (B, S, Hkv, D)
// by strides, with seq_len as for tkp_decode_attention.
typedef struct {
    const void    *k, *v;
    int64_t        k_sb, k_ss, k_sh, v_sb, v_ss, v_sh;
    const int32_t *seq_len;
    int            S;
    tkp_out        out;
} tkp_unique;
const char *tkp_prefix_set_trace(void *buffer);   // diagnostic: per-item timestamps into buffer (nullptr: off)
const char *tkp_prefix_attention(int dtype, int D,
                                 const void *q, int64_t q_sb, int64_t q_sn, int64_t q_sh,
                                 const void *k, int64_t k_sb, int64_t k_sp, int64_t k_sh,
                                 const void *v, int64_t v_sb, int64_t v_sp, int64_t v_sh,
                                 int B, int Nq, int Hq, int Bp, int P, int Hkv, int n_splits,
                                 int consumer_warpgroups, int schedule, int max_blocks, tkp_out out,
                                 const tkp_unique *unique, void *stream);

// Per-sequence attention over the unique caches (kernels/hydragen/decode.cu). q (B, Nq, Hq, D); k, v (B, S, Hkv, D)
// by strides in elements (D stride 1, 16-byte aligned rows). seq_len == nullptr: causal, bottom-right aligned (query n
// sees keys 0 .. S-Nq+n); else int32 (B,): every query of sequence b sees keys 0 .. seq_len[b]-1 (0 = empty; values
// are clamped to [0, S]). The key range [0, S) is cut into n_splits parts of split_keys keys (a multiple of 64).
// merge_with (nullptr = none; needs n_splits == 1 and a final output): fp32 partial slots (e.g. the prefix levels'),
// merged by LSE into this kernel's result before it is written -- the fused last step of a Hydragen decode.
// pdl != 0: programmatic dependent launch (kernels/common/tkp_common.cuh): the kernel may start while the kernel
// before it on the stream runs, and waits for it before it reads merge_with or writes. It reads q, k, v and seq_len
// before that wait, so the kernel before it must not write them and must itself start after their writers (as this
// extension's prefix kernel, launched plainly, does: tkprefix.tk_hydragen.PDL). The prefix and decode kernels let
// the next kernel start early: a caller's own PDL kernel after them must wait before it reads o.
const char *tkp_decode_attention(int dtype, int D,
                                 const void *q, int64_t q_sb, int64_t q_sn, int64_t q_sh,
                                 const void *k, int64_t k_sb, int64_t k_ss, int64_t k_sh,
                                 const void *v, int64_t v_sb, int64_t v_ss, int64_t v_sh,
                                 const int32_t *seq_len,
                                 int B, int Nq, int Hq, int S, int Hkv, int n_splits, int split_keys,
                                 const tkp_segment *merge_with, tkp_out out, int pdl, void *stream);

// Exact merge of partial states by their LSE (kernels/hydragen/merge.cu): for each row r in [0, rows),
//   lse = log(sum_s exp(lse_s)),  o = sum_s exp(lse_s - lse) * o_s      (all -inf: o = 0, lse = -inf)
// over up to TKP_MAX_SEGMENTS segments of slots; segment i holds n_slots slots laid out as in tkp_out
// (o_dtype TKP_FP32 or the output dtype). The result goes to o_out (dtype out_dtype, (rows, D)) and lse_out (rows,).
// pdl: as for tkp_decode_attention (the merge waits for the kernel before it before it reads anything).
const char *tkp_merge_slots(int out_dtype, int D, int64_t rows,
                            const tkp_segment *segments, int n_segments,
                            void *o_out, float *lse_out, int pdl, void *stream);

// Number of SMs of the current device (cached), for the split heuristics on the Python side.
int tkp_num_sms(void);

#ifdef __cplusplus
}  // extern "C"
#endif
