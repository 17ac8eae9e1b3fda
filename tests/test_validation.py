"""Bad input gets a clear Python error naming the argument and what was expected."""
import pytest
import torch

from tkprefix import ChunkKVCache, chunk_attention, decode_attention, hydragen_attention_nopad, merge_states
from tkprefix import prefix_attention

q = torch.randn(4, 1, 8, 16)
k = torch.randn(4, 10, 2, 16)
shared = torch.randn(2, 30, 2, 16)
lse = torch.zeros(4, 1, 8)


def cache(**kw):
    args = dict(n_heads=2, d_head=16, chunk_size=4, dtype=torch.float32, capacity_chunks=8)
    return ChunkKVCache(**{**args, **kw})


def filled_cache():
    c = cache()
    c.add_seq([1, 2, 3], torch.randn(3, 2, 16), torch.randn(3, 2, 16))
    return c


CASES = [
    ("q not a tensor", lambda: prefix_attention(q.numpy(), shared, shared), TypeError, "q must be a torch.Tensor"),
    ("q rank", lambda: prefix_attention(q[0], shared, shared), ValueError, "q must have 4 dimensions"),
    ("q int dtype", lambda: prefix_attention(q.long(), shared, shared), TypeError, "q must have dtype in"),
    ("k dtype differs", lambda: prefix_attention(q, shared.double(), shared), TypeError, "k must have the same dtype as q"),
    ("k/v shapes", lambda: prefix_attention(q, shared, shared[:, :5]), ValueError, "k and v must have the same shape"),
    ("head_dim", lambda: prefix_attention(q, shared[..., :8], shared[..., :8]), ValueError, r"k.shape\[3\] \(head_dim"),
    ("GQA", lambda: prefix_attention(q, torch.randn(2, 3, 3, 16), torch.randn(2, 3, 3, 16)), ValueError,
     "multiple of k's 3 kv-heads"),
    ("prefix rows divide batch", lambda: prefix_attention(q, shared[:1].expand(3, -1, -1, -1), shared[:1].expand(3, -1, -1, -1)),
     ValueError, "must divide q.shape"),
    ("backend name", lambda: prefix_attention(q, shared, shared, backend="cuda"), ValueError, "backend must be one of"),
    ("tk on cpu", lambda: prefix_attention(q, shared, shared, backend="tk"), ValueError, "needs CUDA tensors"),
    ("decode batch", lambda: decode_attention(q, k[:2], k[:2]), ValueError, r"k.shape\[0\] \(batch"),
    ("seq_len shape", lambda: decode_attention(q, k, k, torch.tensor([1, 2])), ValueError, r"seq_len must have shape \(4,\)"),
    ("seq_len dtype", lambda: decode_attention(q, k, k, torch.ones(4)), TypeError, "seq_len must have dtype in"),
    ("seq_len range", lambda: decode_attention(q, k, k, torch.tensor([1, 2, 3, 11])), ValueError,
     r"seq_len values must lie in \[0, 10\]"),
    ("negative seq_len", lambda: decode_attention(q, k, k, torch.tensor([1, -2, 3, 1])), ValueError, "seq_len values"),
    ("causal needs keys", lambda: decode_attention(torch.randn(4, 12, 8, 16), k, k), ValueError,
     "need k.shape\\[1\\] >= 12"),
    ("levels are lists", lambda: hydragen_attention_nopad(q, k, k, shared, shared), TypeError, "must be lists"),
    ("level counts", lambda: hydragen_attention_nopad(q, k, k, [shared], []), ValueError, "one tensor per level"),
    ("level kv-heads", lambda: hydragen_attention_nopad(q, k, k, [torch.randn(2, 3, 4, 16)], [torch.randn(2, 3, 4, 16)]),
     ValueError, r"shared_ks\[0\].shape\[2\] \(kv-heads"),
    ("level rows", lambda: hydragen_attention_nopad(q, k, k, [torch.randn(3, 3, 2, 16)], [torch.randn(3, 3, 2, 16)]),
     ValueError, r"shared_ks\[0\].shape\[0\] \(3 prefix rows\) must divide the batch 4"),
    ("merge shapes", lambda: merge_states(q, lse, q[:2], lse[:2]), ValueError, "o_a and o_b must have the same shape"),
    ("merge lse dtype", lambda: merge_states(q, lse.half(), q, lse), TypeError, "lse_a must have dtype in"),
    ("merge lse shape", lambda: merge_states(q, lse[..., :2], q, lse[..., :2]), ValueError, "lse_a must have shape"),
    ("cache n_heads", lambda: cache(n_heads=0), ValueError, "n_heads must be a positive int"),
    ("cache dtype", lambda: cache(dtype=torch.int8), TypeError, "dtype must be one of"),
    ("add_seq empty", lambda: cache().add_seq([], torch.randn(0, 2, 16), torch.randn(0, 2, 16)), ValueError,
     "at least one token"),
    ("add_seq k length", lambda: cache().add_seq([1, 2], torch.randn(3, 2, 16), torch.randn(3, 2, 16)), ValueError,
     r"k.shape\[0\] \(tokens\) must be 2"),
    ("add_seq k heads", lambda: cache().add_seq([1], torch.randn(1, 3, 16), torch.randn(1, 3, 16)), ValueError,
     "n_heads of the cache"),
    ("add_seq k dtype", lambda: cache().add_seq([1], torch.randn(1, 2, 16).double(), torch.randn(1, 2, 16).double()),
     TypeError, "k must have the cache's dtype"),
    ("tokens not ints", lambda: cache().add_seq(["a"], torch.randn(1, 2, 16), torch.randn(1, 2, 16)), TypeError,
     "tokens must be a sequence of ints"),
    ("unknown seq", lambda: filled_cache().remove_seq(5), ValueError, "seq_id 5 is not a live sequence"),
    ("append shape", lambda: filled_cache().append_token(0, 4, torch.randn(2, 8), torch.randn(2, 8)), ValueError,
     r"k.shape\[2\] \(d_head"),
    ("chunk_attention cache", lambda: chunk_attention(torch.randn(1, 2, 16), object()), TypeError,
     "cache must be a ChunkKVCache"),
    ("chunk_attention rows", lambda: chunk_attention(torch.randn(2, 2, 16), filled_cache()), ValueError,
     r"q.shape\[0\] \(n_seqs"),
    ("chunk_attention GQA", lambda: chunk_attention(torch.randn(1, 3, 16), filled_cache()), ValueError,
     "multiple of cache's 2 kv-heads"),
    ("chunk_attention dtype", lambda: chunk_attention(torch.randn(1, 2, 16).double(), filled_cache()), TypeError,
     "q must have the cache's dtype"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call()
