#!/usr/bin/env bash
# Download, here (with network), the wheels the GPU machine (Python 3.12, x86-64, no network) needs for the README's
# live Snakemake command, into .whl/ (git-ignored), and print what the carry weighs:
#   1. FlashInfer 0.7.2.post1 + apache-tvm-ffi (a peer of the benchmark), FlashInfer repacked without the CUDA
#      sources of modules the harness never JIT-builds (62 MB -> 37 MB);
#   2. the pipeline: snakemake 9, papermill, jupytext, ipykernel, nbformat and their dependencies, less what the GPU
#      machine's image already has (PRESENT below, from /work/.library/device/KINDS.md, read 2026-11-17) and less
#      what they import only optionally: pulp (Snakemake's ILP scheduler; without it Snakemake schedules greedily,
#      16 MB), debugpy (ipykernel's debugger, 5 MB), jedi + parso (IPython's completion, 5 MB).
# Then on the GPU machine: bash scripts/bench/device_run.sh (installs .whl/ with --no-deps, runs the live command),
# with .whl and third_party carried (TK, and the peers' sources: scripts/bench/README.md).
# Usage (repository root): bash scripts/bench/fetch_peer_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=3.12
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform any)
PIPELINE=("snakemake>=9,<10" "papermill>=2.5" "jupytext>=1.16" "ipykernel>=6" "nbformat>=5.9")
OPTIONAL="pulp debugpy jedi parso"
PRESENT="aiohappyeyeballs aiohttp aiosignal annotated_doc anyio attrs certifi charset_normalizer click cloudpickle
colorama contourpy cycler einops filelock fonttools frozenlist fsspec h11 httpcore httpx idna jinja2 markdown
markdown_it_py markupsafe matplotlib mdurl multidict narwhals numpy packaging pandas pillow pip pluggy propcache
protobuf psutil pygments pyparsing python_dateutil pyyaml requests rich setuptools six tabulate tqdm typing_extensions
urllib3 wheel wrapt yarl zipp"
rm -rf .whl /tmp/whl_orig /tmp/whl_pipeline
mkdir -p .whl /tmp/whl_orig /tmp/whl_pipeline

# 1. FlashInfer (repacked) + tvm-ffi
python3 -m pip download -q --no-deps --only-binary=:all: --python-version $PY --implementation cp "${PLAT[@]}" \
  -d /tmp/whl_orig flashinfer-python==0.7.2.post1 apache-tvm-ffi==0.1.15.post2
cp /tmp/whl_orig/apache_tvm_ffi-*.whl .whl/
python3 - <<'PY'
import glob, zipfile
src = glob.glob("/tmp/whl_orig/flashinfer_python-*.whl")[0]
dst = ".whl/" + src.rsplit("/", 1)[1]
drop = tuple("flashinfer/data/csrc/" + d for d in (
    "cake_sampling/", "cake_dsv4/", "fused_moe/", "kda/", "gdn/", "experimental/", "cake_sage_block_sparse_attention/",
    "cake_trtllm_moe_allreduce_union/", "alphamoe", "cake_fmha/"))
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        if info.filename.startswith(drop):
            continue
        data = zi.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            data = ("\n".join(l for l in data.decode().splitlines() if not l.startswith(drop)) + "\n").encode()
        zo.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
print("wrote", dst)
PY

# 2. The pipeline's packages. A dependency published only as a source archive (connection_pool) is built into a
#    wheel here first (pure Python), since a download for another Python version takes wheels only.
python3 -m pip wheel -q --no-deps -w /tmp/whl_pipeline "connection_pool>=0.0.3"
python3 -m pip download -q --only-binary=:all: --python-version $PY --implementation cp "${PLAT[@]}" \
  --find-links /tmp/whl_pipeline -d /tmp/whl_pipeline "${PIPELINE[@]}"
for whl in /tmp/whl_pipeline/*.whl; do
  name=$(basename "$whl" | cut -d- -f1 | tr 'A-Z.-' 'a-z__')
  case " $(echo $OPTIONAL $PRESENT) " in
    *" $name "*) ;;
    *) cp "$whl" .whl/ ;;
  esac
done

bytes() { find "$@" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
echo "wheels in .whl/: $(ls .whl | wc -l) files, $(bytes .whl) bytes"
echo "carry .whl + third_party ($(ls third_party 2>/dev/null | tr '\n' ' ')): $(( $(bytes .whl) + $(bytes third_party) )) bytes" \
     "(a call carries at most 64 MiB = 67108864)"
