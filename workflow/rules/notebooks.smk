# Notebooks: jupytext (.py percent, committed) -> .ipynb -> papermill execution -> figures, tables, macros.
# Each notebook reads whatever CSVs the run has and writes "not recorded" where one is missing.

GEN = "paper/generated"
NB_SHELL = (
    "(jupytext --to ipynb --output {output.src} {input.nb} && "
    "papermill --kernel python3 --cwd {params.cwd} {output.src} {output.ipynb} "
    "-p data_dir {params.data} -p out_dir {params.gen} -p mode {params.mode}) > {log} 2>&1"
)
# A kernel started beside another may lose a race for its TCP ports and die at start-up ("ZMQError: Address
# already in use": jupyter_client picks free ports, then the kernel binds them; papermill#511, snakemake#3689). Such a
# job is run again; a notebook that fails on its own fails every try.
NB_RETRIES = 2


rule notebook_correctness:
    input:
        nb="notebooks/correctness.py",
        lib="notebooks/tkpaper.py",
        data=data_inputs,
    output:
        src="results/notebooks/src/correctness.ipynb",
        ipynb="results/notebooks/correctness.ipynb",
        macros=f"{GEN}/macros_correctness.tex",
        table=f"{GEN}/tables/correctness.tex",
        pdf=f"{GEN}/figures/correctness.pdf",
        png=report(f"{GEN}/figures/correctness.png", category="Correctness"),
    log:
        "results/logs/notebooks/correctness.log",
    benchmark:
        "results/benchmarks/notebooks/correctness.tsv"
    params:
        **nb_params(),
    conda:
        "../envs/tkprefix.yaml"
    retries: NB_RETRIES
    shell:
        NB_SHELL


rule notebook_performance:
    input:
        nb="notebooks/performance.py",
        lib="notebooks/tkpaper.py",
        data=data_inputs,
    output:
        src="results/notebooks/src/performance.ipynb",
        ipynb="results/notebooks/performance.ipynb",
        macros=f"{GEN}/macros_performance.tex",
        summary=f"{GEN}/tables/perf_summary.tex",
        detail=f"{GEN}/tables/perf_detail.tex",
        figures=f"{GEN}/tables/perf_figures.tex",
        pdf=f"{GEN}/figures/perf_latency.pdf",
        png=report(f"{GEN}/figures/perf_latency.png", category="Performance"),
        roof_pdf=f"{GEN}/figures/perf_roofline.pdf",
        roof_png=report(f"{GEN}/figures/perf_roofline.png", category="Performance"),
    log:
        "results/logs/notebooks/performance.log",
    benchmark:
        "results/benchmarks/notebooks/performance.tsv"
    params:
        **nb_params(),
    conda:
        "../envs/tkprefix.yaml"
    retries: NB_RETRIES
    shell:
        NB_SHELL


rule notebook_peers:
    input:
        nb="notebooks/peers.py",
        lib="notebooks/tkpaper.py",
        data=data_inputs,
    output:
        src="results/notebooks/src/peers.ipynb",
        ipynb="results/notebooks/peers.ipynb",
        macros=f"{GEN}/macros_peers.tex",
        table=f"{GEN}/tables/peers.tex",
        sharing=f"{GEN}/tables/peers_sharing.tex",
        pdf=f"{GEN}/figures/peers_speedup.pdf",
        png=report(f"{GEN}/figures/peers_speedup.png", category="Performance"),
    log:
        "results/logs/notebooks/peers.log",
    benchmark:
        "results/benchmarks/notebooks/peers.tsv"
    params:
        **nb_params(),
    conda:
        "../envs/tkprefix.yaml"
    retries: NB_RETRIES
    shell:
        NB_SHELL


rule notebook_e2e:
    input:
        nb="notebooks/e2e.py",
        lib="notebooks/tkpaper.py",
        data=data_inputs,
    output:
        src="results/notebooks/src/e2e.ipynb",
        ipynb="results/notebooks/e2e.ipynb",
        macros=f"{GEN}/macros_e2e.tex",
        table=f"{GEN}/tables/e2e.tex",
        pdf=f"{GEN}/figures/e2e.pdf",
        png=report(f"{GEN}/figures/e2e.png", category="End-to-end decode"),
    log:
        "results/logs/notebooks/e2e.log",
    benchmark:
        "results/benchmarks/notebooks/e2e.tsv"
    params:
        **nb_params(),
    conda:
        "../envs/tkprefix.yaml"
    retries: NB_RETRIES
    shell:
        NB_SHELL


rule notebook_crossgpu:
    input:
        nb="notebooks/crossgpu.py",
        lib="notebooks/tkpaper.py",
        data=crossgpu_inputs,
    output:
        src="results/notebooks/src/crossgpu.ipynb",
        ipynb="results/notebooks/crossgpu.ipynb",
        macros=f"{GEN}/macros_crossgpu.tex",
        table=f"{GEN}/tables/crossgpu.tex",
        pdf=f"{GEN}/figures/crossgpu.pdf",
        png=report(f"{GEN}/figures/crossgpu.png", category="Across GPUs"),
    log:
        "results/logs/notebooks/crossgpu.log",
    benchmark:
        "results/benchmarks/notebooks/crossgpu.tsv"
    params:
        **nb_params(),
        **crossgpu_params(),
    conda:
        "../envs/tkprefix.yaml"
    retries: NB_RETRIES
    shell:
        NB_SHELL.replace(") > {log}", " -p runs '{params.runs}' -p rerun '{params.rerun}') > {log}")
