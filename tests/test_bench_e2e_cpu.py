"""The end-to-end model's decode step on the CPU: a tiny Llama-shaped model, the static-cache SDPA decoder and
tkprefix's Hydragen (torch backend) give the same logits step after step, with the step index on the device."""
import torch

from tkprefix.bench.e2e import Model, ModelConfig, NaiveAttention, TkHydragenAttention


def test_naive_and_hydragen_decoders_agree():
    cfg = ModelConfig(layers=2, hidden=64, q_heads=4, kv_heads=2, head_dim=16, intermediate=96, vocab=101)
    dev = torch.device("cpu")
    m = Model(cfg, dev, seed=0)
    for L in m.layers:  # bf16 on the CPU is slow and coarse: run the check in float32
        for k in L:
            L[k] = L[k].float()
    m.embed, m.norm, m.lm_head = m.embed.float(), m.norm.float(), m.lm_head.float()
    P, T, B = 37, 5, 3
    cos, sin = (x.float() for x in m.rope_tables(P + T))
    prefix = m.prefill(torch.randint(0, cfg.vocab, (P,)), cos, sin)
    stream = torch.randint(0, cfg.vocab, (T, B))
    outs = []
    for att in (NaiveAttention(prefix, B, T), TkHydragenAttention(prefix, B, T, "torch")):
        tokens, t_dev, logits = torch.empty(B, dtype=torch.long), torch.zeros(1, dtype=torch.long), []
        for t in range(T):
            tokens.copy_(stream[t])
            t_dev.fill_(t)
            logits.append(m.step(tokens, t_dev, P, att, cos, sin))
        outs.append(torch.stack(logits))
    assert torch.allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)
