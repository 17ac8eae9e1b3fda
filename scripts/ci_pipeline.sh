#!/usr/bin/env bash
# CPU pipeline step of CI: build the paper from the recorded H100 run (replay mode), as the README's main command.
#   bash scripts/ci_pipeline.sh            # installs TeX (apt) and the pipeline extra (pip) if missing, then runs
# Leaves paper/build/tkprefix.pdf and results/report.html; prints the wall time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

if ! command -v latexmk >/dev/null || ! command -v pdftoppm >/dev/null; then
    echo "[ci_pipeline] installing TeX Live (latexmk, latex-recommended, fonts-recommended) and poppler-utils"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        latexmk texlive-latex-recommended texlive-fonts-recommended poppler-utils >/dev/null
fi
if ! python3 -c "import snakemake, papermill, jupytext, ipykernel, matplotlib, pandas, yaml" 2>/dev/null; then
    echo "[ci_pipeline] installing the pipeline extra"
    python3 -m pip install -q -e ".[pipeline]"
fi
t1=$(date +%s)
echo "[ci_pipeline] set-up: $((t1 - t0)) s"

# README main command (replay: no GPU needed; every number comes from data/h100).
snakemake --cores 2 --config mode=replay
snakemake --cores 1 --config mode=replay --report results/report.html
t2=$(date +%s)
echo "[ci_pipeline] pipeline (replay -> paper): $((t2 - t1)) s"

test -s paper/build/tkprefix.pdf
pages=$(pdfinfo paper/build/tkprefix.pdf 2>/dev/null | awk '/^Pages:/ {print $2}')
mkdir -p results/pages
pdftoppm -r 50 -png paper/build/tkprefix.pdf results/pages/page
echo "[ci_pipeline] paper/build/tkprefix.pdf: ${pages:-?} pages (PNG previews in results/pages/); total $((t2 - t0)) s"
