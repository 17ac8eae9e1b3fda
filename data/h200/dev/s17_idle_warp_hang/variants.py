"""Make the kernel folders of session 17's hang experiment (data/h200/dev/s17_idle_warp_hang):
  old        kernels/ with hydragen/prefix.cu as at 55c774e (the idle warpgroup's warps wait on their own)
  old_stall  the same with one idle warp held for 50 us at its third tile (the fault hook of the new prefix.cu)
  new        kernels/ as committed (the idle warpgroup syncs before it frees a stage)
  new_stall  the same with the fault hook on
  new_fence  new plus fence.mbarrier_init after the barriers' init (only run if new still hangs)
Usage: python variants.py OLD_PREFIX_CU DEST"""
import shutil
import sys
from pathlib import Path

old_src, dest = Path(sys.argv[1]), Path(sys.argv[2])
HOOK = """#ifdef TKP_FAULT_STALL_IDLE_NS   // test hook (data/h200/dev/s17_idle_warp_hang): one idle warp arrives late
                    if (!active && warpgroup::warpid() == 1 && it == 2 && w == blockIdx.x) {
                        for (const auto t0 = now_ns(); now_ns() - t0 < TKP_FAULT_STALL_IDLE_NS;) {}
                    }
#endif
"""
ANCHOR_OLD = "                    wait(k_arrived[s], phase);\n                    if (active) {"
FENCE_AT = "    __syncthreads();\n\n    if (wg == NUM_WARPGROUPS - 1) {"


def make(name, text):
    d = dest / name
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree("kernels", d)
    (d / "hydragen" / "prefix.cu").write_text(text)


old = old_src.read_text()
new = Path("kernels/hydragen/prefix.cu").read_text()
assert old.count(ANCHOR_OLD) == 1 and new.count("#ifdef TKP_FAULT_STALL_IDLE_NS") == 1 and new.count(FENCE_AT) == 1
STALL = "#define TKP_FAULT_STALL_IDLE_NS 50000ull\n"
make("old", old)
make("old_stall", STALL + old.replace(ANCHOR_OLD, HOOK + ANCHOR_OLD))
make("new", new)
make("new_stall", STALL + new)
make("new_fence", new.replace(FENCE_AT, '    asm volatile("fence.mbarrier_init.release.cluster;\\n" ::: "memory");\n' + FENCE_AT))
print("variants in", dest)
