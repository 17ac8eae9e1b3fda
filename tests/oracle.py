"""An independent float64 oracle: per sequence, per query, per head, one softmax over all keys it may see."""
import math

import torch


def softmax_attend(query, keys, values):
    """query (D,), keys/values (T, D) float64 → (D,); no keys → zeros."""
    if keys.shape[0] == 0:
        return torch.zeros_like(query)
    weights = torch.softmax(keys @ query / math.sqrt(query.shape[0]), dim=0)
    return weights @ values


def hydragen_oracle(q, k, v, shared_ks, shared_vs, seq_len=None):
    batch, n_queries, q_heads, _ = q.shape
    group = q_heads // k.shape[2]
    out = torch.empty(q.shape, dtype=torch.float64)
    for b in range(batch):
        shared_k = [sk[b // (batch // sk.shape[0])] for sk in shared_ks]
        shared_v = [sv[b // (batch // sv.shape[0])] for sv in shared_vs]
        for j in range(n_queries):
            visible = int(seq_len[b]) if seq_len is not None else k.shape[1] - n_queries + j + 1
            keys = torch.cat(shared_k + [k[b, :visible]]).double()
            values = torch.cat(shared_v + [v[b, :visible]]).double()
            for h in range(q_heads):
                out[b, j, h] = softmax_attend(q[b, j, h].double(), keys[:, h // group], values[:, h // group])
    return out


def rel_err(out, ref) -> float:
    return float((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-300))
