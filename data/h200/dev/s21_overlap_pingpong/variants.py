"""Kernel folders for session 21's A/B of the overlapped prefix loop (kernels/hydragen/prefix.cu):
  head     main as it is
  msel     ../s20_softmax_overlap/mask_selects.patch: keys past P masked with selects (no branch between the waits)
  pp       FlashAttention-3's warp-scheduler barrier: the two consumer warpgroups take turns issuing their wgmmas
           (S_t = Q K_t^T and O += P_{t-1} V_{t-1}), a chain that runs across items
  msel_pp  both
Usage: python3 variants.py DEST"""
import shutil
import subprocess
import sys
from pathlib import Path

PP_EDITS = [
    # the chain: warpgroup 0 opens its own first turn; each turn hands over to the other warpgroup
    ("""        if (blockIdx.x < n_items) load_q(blockIdx.x, 0);
""", """        if (blockIdx.x < n_items) load_q(blockIdx.x, 0);
        constexpr int TURN_BAR = 4;   // ids 1..3 are the per-warpgroup syncs
        if (OVERLAP && wg == 0) asm volatile("bar.arrive %0, %1;\\n" ::"r"(TURN_BAR), "n"(2 * WARPGROUP_THREADS));
"""),
    ("""                    wait(k_arrived[s], (t / S) % 2);
                    warpgroup::mm_ABt(att, q_smem[qb][wg], k_smem[s]);
                    warpgroup::mma_async_wait();
""", """                    wait(k_arrived[s], (t / S) % 2);
                    asm volatile("bar.sync %0, %1;\\n" ::"r"(TURN_BAR + wg), "n"(2 * WARPGROUP_THREADS));
                    warpgroup::mm_ABt(att, q_smem[qb][wg], k_smem[s]);
                    asm volatile("bar.arrive %0, %1;\\n" ::"r"(TURN_BAR + 1 - wg), "n"(2 * WARPGROUP_THREADS));
                    warpgroup::mma_async_wait();
"""),
    ("""                    warp::mul(max_vec_last_scaled, max_vec, SCALE);
                    warpgroup::mm_ABt(att, q_smem[qb][wg], k_smem[s]);             // S_t = Q K_t^T
                    wait(v_arrived[sp], ((t - 1) / S) % 2);
                    warpgroup::mma_AB(o_reg, att_mma, v_smem[sp]);                // O += P_{t-1} V_{t-1}
""", """                    warp::mul(max_vec_last_scaled, max_vec, SCALE);
                    asm volatile("bar.sync %0, %1;\\n" ::"r"(TURN_BAR + wg), "n"(2 * WARPGROUP_THREADS));
                    warpgroup::mm_ABt(att, q_smem[qb][wg], k_smem[s]);             // S_t = Q K_t^T
                    wait(v_arrived[sp], ((t - 1) / S) % 2);
                    warpgroup::mma_AB(o_reg, att_mma, v_smem[sp]);                // O += P_{t-1} V_{t-1}
                    asm volatile("bar.arrive %0, %1;\\n" ::"r"(TURN_BAR + 1 - wg), "n"(2 * WARPGROUP_THREADS));
"""),
]
def main(dest):
    head = Path("kernels/hydragen/prefix.cu").read_text()
    for old, _ in PP_EDITS:
        assert head.count(old) == 1, old
    for name in ("head", "msel", "pp", "msel_pp"):
        d = dest / name
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree("kernels", d)
        if "msel" in name:
            subprocess.run(["patch", "-p2", "-s", "-d", str(d), "-i",
                            str(Path("data/h200/dev/s20_softmax_overlap/mask_selects.patch").resolve())], check=True)
        if "pp" in name:
            f = d / "hydragen" / "prefix.cu"
            t = f.read_text()
            for old, new in PP_EDITS:
                assert t.count(old) == 1, old
                t = t.replace(old, new)
            f.write_text(t)
        print(d)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
