"""scripts/device/sanitize_small.py, plus the co-run: prefix on 3 and 40 SMs beside a decode (bf16, GQA 4 and 8,
odd prefix, seq_len with an empty sequence), and the automatic co-run of a small c3-like step."""
import os, runpy, torch
from tkprefix import tk_hydragen as tkh

def corun(B, Hq, Hkv, P, S, sms):
    q = torch.randn(B, 1, Hq, 128, device="cuda", dtype=torch.bfloat16)
    pk, pv = (torch.randn(1, P, Hkv, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(B, S, Hkv, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    sl = torch.randint(0, S + 1, (B,), device="cuda", dtype=torch.int32); sl[0] = 0
    return tkh.hydragen_attention_nopad(q, k, v, [pk], [pv], sl, prefix_sms=sms)

corun(64, 16, 4, 333, 70, 3)
corun(300, 32, 8, 517, 130, 40)
q = torch.randn(512, 1, 32, 128, device="cuda", dtype=torch.bfloat16)
k = torch.randn(512, 256, 8, 128, device="cuda", dtype=torch.bfloat16)
pk = torch.randn(1, 301, 8, 128, device="cuda", dtype=torch.bfloat16)
assert tkh._corun_sms(q, k, [(pk, pk)], tkh._num_sms(0)) > 0
tkh.hydragen_attention_nopad(q, k, k, [pk], [pk], torch.full((512,), 200, device="cuda", dtype=torch.int32))
torch.cuda.synchronize()
print("co-run done")
runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "scripts", "device", "sanitize_small.py"), run_name="__main__")
