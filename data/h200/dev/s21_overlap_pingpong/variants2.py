"""Call 2's kernel folders (on main 972376d): the overlapped loop with its mask peeled off, so that no branch sits
between its two waits and no select is added (compiled here: ptxas then waits for P V after 64 of the 66 exp2s):
  head     main as it is
  peel     full tiles in a loop without the mask; the item's last tile, when P cuts it, in one masked step after it
  peel_pp  peel with variants.py's warpgroup turns
  nomask, nomask_pp  no mask at all in the loop, as a bound (wrong where P is not a multiple of 128; compiled here:
           the P V wait after 64 of the 66 exp2s)
Usage: python3 variants2.py DEST"""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from variants import PP_EDITS  # noqa: E402  (the turns, as call 1 measured them)

LOOP = """                for (int it = 1; it < item.n_iters; it++, t++) {
                    const int s = t % S, sp = (t - 1) % S;
"""
LOOP_END = """                    warp::copy(att_mma, att);
                }
                const int sl = (t - 1) % S;                                        // the item's last tile
"""
MASK = """                    const int valid = first_valid - it * KV;
                    if (valid < KV) warp::right_fill(att, att, valid, base_types::constants<float>::neg_infty());
"""
PEEL_MASK = """                    if constexpr (decltype(masked)::value)   // only the tile that P cuts: no branch in the loop
                        warp::right_fill(att, att, first_valid - it * KV, base_types::constants<float>::neg_infty());
"""
dest = Path(sys.argv[1])
head = Path("kernels/hydragen/prefix.cu").read_text()
for s in (LOOP, LOOP_END, MASK):
    assert head.count(s) == 1, s
for name in ("head", "peel", "peel_pp", "nomask", "nomask_pp"):
    d = dest / name
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree("kernels", d)
    t = head
    if "peel" in name:
        t = t.replace(LOOP, """                const auto step = [&](int it, auto masked) {
                    const int s = t % S, sp = (t - 1) % S;
""").replace(MASK, PEEL_MASK).replace(LOOP_END, """                    warp::copy(att_mma, att);
                };
                // tiles 1 .. n_full-1 need no mask; the last one does when P ends inside it
                const int n_full = first_valid >= item.n_iters * KV ? item.n_iters : item.n_iters - 1;
                for (int it = 1; it < n_full; it++, t++) step(it, std::false_type{});
                if (n_full < item.n_iters && item.n_iters > 1) { step(item.n_iters - 1, std::true_type{}); t++; }
                const int sl = (t - 1) % S;                                        // the item's last tile
""")
    if "nomask" in name:
        t = t.replace(MASK, "")
    if "pp" in name:
        for old, new in PP_EDITS:
            assert t.count(old) == 1, old
            t = t.replace(old, new)
    (d / "hydragen" / "prefix.cu").write_text(t)
    print(d)
