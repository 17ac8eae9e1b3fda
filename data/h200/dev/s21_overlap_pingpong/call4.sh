#!/usr/bin/env bash
# Session 21, call 4: the overlapped prefix loop with its mask peeled (variants2.py; folders carried in .dev/s21/v3)
# head, peel, peel_pp, nomask (a bound), nomask_pp. One hydragen-only build each; ab.py alternated three times; ncu
# cycles; GPU tests on peel and peel_pp; memcheck, racecheck, synccheck on the better of the two if it beats head.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
L=$OUT/call.log
[ -d third_party/ThunderKittens ] || tar xzf .dev/s21/third_party.tgz
V="head peel peel_pp nomask nomask_pp"
kenv() { echo "TKPREFIX_FAMILIES=hydragen TKPREFIX_KERNELS_DIR=$PWD/.dev/s21/v3/$1 TKPREFIX_BUILD_DIR=/tmp/b_$1"; }
(
export PYTHONUNBUFFERED=1 THUNDERKITTENS_ROOT=$PWD/third_party/ThunderKittens TORCH_CUDA_ARCH_LIST=9.0a PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv
for v in $V; do
  ( env $(kenv $v) MAX_JOBS=3 timeout 300 python3 -c "import tkprefix.build as b; b.load_extension(['hydragen'])" \
      > /tmp/build_$v.log 2>&1; echo "build $v rc=$? at $(el) s" ) &
done
wait
echo "tag,B,Hq,Hkv,P,median_us,tflops,rel_err,nan" > $OUT/ab.csv
for i in 1 2 3; do for v in $V; do
  env $(kenv $v) TAG=$v timeout 60 python3 data/h200/dev/s20_overlap_tile/ab.py >> $OUT/ab.csv 2>>/tmp/ab.err
  echo "ab $v rc=$? at $(el) s"
done; done
tail -3 /tmp/ab.err
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
for v in $V; do
  env $(kenv $v) timeout 60 $NCU --profile-from-start off --metrics sm__cycles_elapsed.max,sm__cycles_active.avg,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active \
    --csv python3 data/h200/dev/s20_fa3_ncu/measure.py ncu tk_hydragen 1024 32 8 2048 > /tmp/ncu_$v.csv 2>&1
  echo "ncu $v rc=$? at $(el) s"; grep -h '"sm__\|"smsp__' /tmp/ncu_$v.csv | sed "s/^/$v,/" >> $OUT/ncu.csv
done
for v in peel peel_pp; do
  env $(kenv $v) timeout 120 python3 -m pytest -q -x tests/gpu/test_tk_hydragen.py > $OUT/pytest_$v.log 2>&1
  echo "pytest $v rc=$? at $(el) s: $(tail -1 $OUT/pytest_$v.log)"
done
BEST=$(python3 - <<'PY'
import csv, math, os
rows = list(csv.DictReader(open(os.environ["OUT"] + "/ab.csv")))
t = {}
for r in rows: t.setdefault((r["tag"], r["B"], r["Hq"], r["Hkv"], r["P"]), []).append(float(r["median_us"]))
tags = sorted({k[0] for k in t})
shapes = sorted({k[1:] for k in t})
g = {v: math.exp(sum(math.log(min(t[(v,) + s]) / min(t[("head",) + s])) for s in shapes) / len(shapes)) for v in tags}
print(g, file=open(os.environ["OUT"] + "/geomean.txt", "w"))
g = {v: x for v, x in g.items() if v in ("peel", "peel_pp") and x < 1}
print(min(g, key=g.get) if g else "head")
PY
)
echo "best by geomean: $BEST"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
if [ "$BEST" != head ] && [ $(el) -lt 250 ]; then
  for tool in memcheck racecheck synccheck; do
    env $(kenv $BEST) timeout 100 $CS --tool $tool --print-limit 20 python3 scripts/device/sanitize_small.py \
      > $OUT/san_${tool}_$BEST.log 2>&1
    echo "$tool $BEST rc=$? at $(el) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/san_${tool}_$BEST.log)"
  done
fi
) >> $L 2>&1
echo "done at $(el) s" >> $L
