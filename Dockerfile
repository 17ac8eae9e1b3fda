# tkprefix: the full artifact (TK kernels, peers, pipeline, paper) in one image.
#   docker build -t tkprefix .
#   mkdir -p out && docker run --rm --gpus all --network none --user "$(id -u):$(id -g)" -v "$PWD/out:/out" tkprefix
#                                                                          # live on a Hopper GPU (mode=auto)
#   mkdir -p out && docker run --rm --network none --user "$(id -u):$(id -g)" -v "$PWD/out:/out" tkprefix mode=replay
#                                                                          # any machine: the paper from data/
# The pipeline runs offline: everything it needs (torch, TK, peers, TeX) is installed here at build time. Every
# install step fails the build when it fails (bash -o pipefail, no masking). Create ./out before `docker run` (a
# missing one is created by Docker, owned by root) and pass your ids with --user, so its files are yours.
# Lines tagged `# ci-stack` are run verbatim (index URL and /opt/tkprefix swapped, see there) by
# scripts/ci_image_stack.sh, which CI uses to prove this image's Python stack and CUDA 12.6 kernel build.
FROM nvidia/cuda:12.6.3-devel-ubuntu22.04@sha256:d49bb8a4ff97fb5fe477947a3f02aa8c0a53eae77e11f00ec28618a0bcaa2ad1

# Python 3.11 from Ubuntu 22.04's own archive (package python3.11, universe, with its -dev and -venv): snakemake >= 8
# needs Python >= 3.11 and jammy's default python3 is 3.10. Chosen over a PPA (deadsnakes: a third-party archive and
# key) and over a source build (slow, and ours to patch); the RUN below asserts the version.
# scripts/ci_image_stack.sh reads this line for the Python minor of its venv.
ARG PYTHON=python3.11

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    TORCH_CUDA_ARCH_LIST=9.0a \
    CUDA_HOME=/usr/local/cuda \
    THUNDERKITTENS_ROOT=/opt/ThunderKittens \
    TK_COMMIT=0b55588d2769dde0c7a9a606ffc015b0ca7a9551 \
    CHUNK_ATTN_COMMIT=dde08ce9031ae9bf9e74f08c32cb549ef5f1340d \
    HYDRAGEN_COMMIT=1ea2255db0778f5cf47a4f72a535dc77a8b6b7bd \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MAX_JOBS=8

# System: Python, build tools, TeX Live for latexmk (the minimal set the paper needs), poppler for PNG previews.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        "${PYTHON}" "${PYTHON}-dev" "${PYTHON}-venv" git cmake ninja-build g++ \
        latexmk texlive-latex-recommended texlive-fonts-recommended poppler-utils \
    && rm -rf /var/lib/apt/lists/* \
    && "${PYTHON}" -c 'import sys; assert sys.version_info >= (3, 11), sys.version'

WORKDIR /opt

# PyTorch 2.5.1 from the cu124 wheels (there is no cu126 build of 2.5.1; nvcc 12.6 with a cu124 torch only warns).
RUN "${PYTHON}" -m venv /opt/venv
RUN pip install --upgrade pip==24.3.1 setuptools==75.6.0 wheel==0.45.1  # ci-stack
RUN pip install torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124  # ci-stack
RUN pip install ninja==1.11.1.3 numpy==2.4.6 einops==0.8.0 packaging==24.2 mypy==1.13.0  # ci-stack

# ThunderKittens at the pinned commit (headers only: the extension is built by tkprefix), with the CUDA < 12.8
# workaround (docker/patches/*.patch says why; `tkprefix doctor` checks it is there).
COPY docker/patches/tk-0b55588d-cuda-lt-12.8.patch /opt/patches/
RUN git clone https://github.com/HazyResearch/ThunderKittens.git /opt/ThunderKittens \
    && git -C /opt/ThunderKittens checkout "$TK_COMMIT" \
    && git -C /opt/ThunderKittens apply /opt/patches/tk-0b55588d-cuda-lt-12.8.patch \
    && git config --system --add safe.directory /opt/ThunderKittens

# Peers. FlashInfer: a release with prebuilt kernels for torch 2.5 + cu124 (cascade attention on sm_90).
# flash-attn (needed by upstream Hydragen): its setup fetches a prebuilt wheel matching torch 2.5 / CUDA 12.
RUN pip install flashinfer-python==0.2.3 --extra-index-url https://flashinfer.ai/whl/cu124/torch2.5/ \
    && pip install flash-attn==2.7.2.post1 --no-build-isolation

# Upstream Hydragen at its release commit; --no-deps: its requirements pin an older torch stack.
RUN git clone https://github.com/ScalingIntelligence/hydragen.git /opt/hydragen \
    && git -C /opt/hydragen checkout "$HYDRAGEN_COMMIT" \
    && pip install --no-deps -e /opt/hydragen \
    && pip install triton==3.1.0

# Upstream ChunkAttention, built for sm_90 (its CMake hard-codes CUDA_ARCHITECTURES "86").
RUN git clone https://github.com/microsoft/chunk-attention.git /opt/chunk-attention \
    && git -C /opt/chunk-attention checkout "$CHUNK_ATTN_COMMIT" \
    && sed -i 's/CUDA_ARCHITECTURES "86"/CUDA_ARCHITECTURES "90"/' /opt/chunk-attention/cpp/chunk_attn/CMakeLists.txt \
    && grep -q 'CUDA_ARCHITECTURES "90"' /opt/chunk-attention/cpp/chunk_attn/CMakeLists.txt \
    && cmake -S /opt/chunk-attention -B /opt/chunk-attention/build -G Ninja \
        -DTORCH="$(python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')/../.." \
        -DUSE_MKL=OFF -DUSE_CUDA=ON -DCMAKE_BUILD_TYPE=Release \
    && cmake --build /opt/chunk-attention/build

# tkprefix itself with the pipeline and benchmark extras, every package at the version CI tested
# (docker/constraints.txt); the Jupyter kernel the notebooks run on, inside the venv (every uid finds it there).
# Then doctor's checks that need no GPU: TK, its CUDA < 12.8 patch, nvcc, compiler.
COPY . /opt/tkprefix
RUN pip install -c /opt/tkprefix/docker/constraints.txt -e "/opt/tkprefix[pipeline,bench,dev]"  # ci-stack
RUN python -m ipykernel install --sys-prefix --name python3 \
    && tkprefix doctor --no-gpu

# The Triton tree peers (FastTree, DeFT, SGLang's decode kernel) into /opt/tkprefix/third_party/FastTree-Artifact:
# scripts/bench/extract_tree_peers.sh takes the artifact's kernel files at the commit it pins (from a bare clone) and
# sglang 0.2.13's decode kernel (PyPI). Not here: the prior TK chunk-first kernel (its file's commit 09adee44 is not
# in jacksontromero/chunk-attention-tk's history as cloned today; scripts/bench/README.md); its rows say so.
RUN git clone --quiet --bare https://github.com/PanZaifeng/FastTree-Artifact.git /tmp/FastTree-Artifact.git \
    && FASTTREE_MIRROR=/tmp/FastTree-Artifact.git bash /opt/tkprefix/scripts/bench/extract_tree_peers.sh \
    && rm -rf /tmp/FastTree-Artifact.git

# Built as root into /opt (read-only at run time); run as any uid (`docker run --user "$(id -u):$(id -g)"`, so the
# files in ./out are yours; default uid 1000). HOME and every cache (torch extensions, FlashInfer JIT, Triton,
# matplotlib) live in /tmp/home, which every uid may write; LOGNAME serves a uid with no passwd entry.
RUN useradd --uid 1000 --no-create-home --home-dir /tmp/home tk \
    && mkdir -m 1777 /tmp/home \
    && mkdir -p /out && chmod 1777 /out
ENV HOME=/tmp/home \
    LOGNAME=tk \
    XDG_CACHE_HOME=/tmp/home/.cache \
    TORCH_EXTENSIONS_DIR=/tmp/home/.cache/torch_extensions \
    MPLCONFIGDIR=/tmp/home/.config/matplotlib
USER 1000:1000

WORKDIR /out
ENTRYPOINT ["/opt/tkprefix/workflow/scripts/docker-entrypoint.sh"]
CMD ["mode=auto"]
