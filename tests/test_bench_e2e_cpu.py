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


def test_chunk_attention_decoder_appends_through_the_cache_and_agrees():
    """tk_chunk_attn's e2e path with the torch backend: the prompt in shared chunks (chunk 4, so its last chunk is
    partial and the new tokens cross chunk borders), one token per sequence and step appended on the host (reserve)
    and the device (lengths, K/V per layer); same logits as the static-cache decoder; re-plans only at borders."""
    from tkprefix.bench.e2e import ChunkAttention

    cfg = ModelConfig(layers=2, hidden=64, q_heads=4, kv_heads=2, head_dim=16, intermediate=96, vocab=101)
    m = Model(cfg, torch.device("cpu"), seed=0)
    for L in m.layers:
        for k in L:
            L[k] = L[k].float()
    m.embed, m.norm, m.lm_head = m.embed.float(), m.norm.float(), m.lm_head.float()
    P, T, B = 37, 9, 3
    cos, sin = (x.float() for x in m.rope_tables(P + T))
    prompt = torch.randint(0, cfg.vocab, (P,))
    prefix = m.prefill(prompt, cos, sin)
    stream = torch.randint(0, cfg.vocab, (T, B))
    chunk = ChunkAttention(prefix, B, T, "torch", prompt, stream.numpy(), cfg.q_heads, chunk_size=4)
    outs = []
    for att in (NaiveAttention(prefix, B, T), chunk):
        for _ in range(2):  # the second loop runs after reset(), as the harness's repetitions do
            att.reset()
            tokens, t_dev, logits = torch.empty(B, dtype=torch.long), torch.zeros(1, dtype=torch.long), []
            for t in range(T):
                tokens.copy_(stream[t])
                t_dev.fill_(t)
                att.plan(t)
                att.plan(t)  # planning a step twice (before a capture, then in the loop) appends once
                logits.append(m.step(tokens, t_dev, P, att, cos, sin))
            outs.append(torch.stack(logits))
    for out in outs[1:]:
        assert torch.allclose(outs[0], out, rtol=1e-4, atol=1e-4)
    assert chunk.replans == 3  # the first plan, then fill 1 + 3 tokens reaches the border at t = 3 and t = 7
    assert [chunk.cache.seq_len(s) for s in chunk.cache.seq_ids] == [P + T] * B
    assert chunk.cache.stats()["shared_chunks"] == P // 4
