#!/usr/bin/env bash
# Session 20, call 3: the overlapped prefix loop's key tile and stages, and the proxy fence per wgmma (variants.py),
# one hydragen-only build each; the A/B (ab.py, one process per build, alternated twice); ncu cycles of each on
# c3 B1024 32/8 P2048; GPU tests and sanitizers on the best variant if it gains > 1.5 %.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s20/third_party.tgz
D=data/h200/dev/s20_overlap_tile
V="head o128s2 o128s2nf o96s2 o96s2nf o112s2 o64s2"
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
python3 $D/variants.py /tmp/ov && cp -r .dev/s20/kernels_base /tmp/ov/head   # head: main 24367a3's kernels
for v in $V; do
  ( TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/ov/$v TKPREFIX_BUILD_DIR=/tmp/b_$v MAX_JOBS=4 timeout 300 \
      python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" > /tmp/build_$v.log 2>&1
    echo "build $v rc=$? at $(el) s" ) &
done
wait
echo "tag,B,Hq,Hkv,P,median_us,tflops,rel_err,nan" > $OUT/ab.csv
for i in 1 2; do for v in $V; do
  TAG=$v TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/ov/$v TKPREFIX_BUILD_DIR=/tmp/b_$v timeout 60 \
    python3 $D/ab.py >> $OUT/ab.csv 2>>/tmp/ab.err; echo "ab $v rc=$? at $(el) s"
done; done
tail -5 /tmp/ab.err
# the best variant over the overlapped shapes (not the serial-loop control), against o128s2 (main)
BEST=$(python3 - "$OUT/ab.csv" <<'PY'
import csv, math, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["P"] != "1024"]
t = {}
for r in rows:
    t.setdefault(r["tag"], {}).setdefault((r["B"], r["Hq"], r["P"]), []).append(float(r["median_us"]))
base = {k: sum(v) / len(v) for k, v in t["o128s2"].items()}
g = {tag: math.exp(sum(math.log(sum(v) / len(v) / base[k]) for k, v in d.items()) / len(d)) for tag, d in t.items()}
best = min((tag for tag in g if tag != "head"), key=g.get)
print(best if g[best] < 0.985 else "none", " ".join(f"{k}:{v:.3f}" for k, v in sorted(g.items())))
PY
)
echo "geomean vs o128s2: $BEST"
B=${BEST%% *}
if [ "$B" != none ]; then
  export TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/ov/$B TKPREFIX_BUILD_DIR=/tmp/b_$B
  timeout 120 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > $OUT/pytest_$B.log 2>&1
  echo "pytest $B rc=$? at $(el) s: $(tail -1 $OUT/pytest_$B.log)"
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
  for tool in memcheck racecheck; do
    timeout 120 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py > $OUT/san_$tool.log 2>&1
    echo "$tool $B rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_$tool.log)"
  done
  unset TKPREFIX_FAMILIES TKPREFIX_KERNELS_DIR TKPREFIX_BUILD_DIR
fi
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
for v in $V; do
  TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=/tmp/ov/$v TKPREFIX_BUILD_DIR=/tmp/b_$v timeout 60 \
    $NCU --profile-from-start off --metrics sm__cycles_elapsed.max,sm__cycles_active.avg,smsp__inst_executed.sum,smsp__cycles_active.avg,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active \
    --csv python3 data/h200/dev/s20_fa3_ncu/measure.py ncu tk_hydragen 1024 32 8 2048 > /tmp/ncu_$v.csv 2>&1
  echo "ncu $v rc=$? at $(el) s"; grep -h '"sm__\|"smsp__' /tmp/ncu_$v.csv | sed "s/^/$v,/" >> $OUT/ncu.csv
done
) >> $L 2>&1
echo "done at $(el) s" >> $L
