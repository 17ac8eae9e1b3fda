#!/usr/bin/env bash
# README set-up, first line (Debian/Ubuntu; root, or sudo): what `pip install -e ".[dev,pipeline]"` cannot install,
# each only where it is missing:
#   - latexmk, TeX Live (latex-recommended, fonts-recommended) and poppler-utils from apt: the paper and its checks;
#   - a CPU build of torch when no torch is installed, so that the package's torch requirement does not pull a
#     multi-GB CUDA build (a machine with a CUDA torch keeps it).
# Prints what it installed and how long it took.
set -euo pipefail
t0=$(date +%s)
apt_pkgs=()
command -v latexmk >/dev/null || apt_pkgs+=(latexmk texlive-latex-recommended texlive-fonts-recommended)
command -v pdfinfo >/dev/null || apt_pkgs+=(poppler-utils)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
    echo "[setup] apt: ${apt_pkgs[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi
if ! python3 -c "import torch" 2>/dev/null; then
    echo "[setup] pip: torch 2.13.0 (CPU build)"
    # from the configured indexes (a local wheel cache, as in this project's CI), else from PyTorch's CPU index
    python3 -m pip install -q "torch==2.13.0+cpu" 2>/dev/null ||
        python3 -m pip install -q "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
fi
echo "[setup] done in $(( $(date +%s) - t0 )) s (TeX: $(command -v latexmk), torch $(python3 -c 'import torch; print(torch.__version__)'))"
