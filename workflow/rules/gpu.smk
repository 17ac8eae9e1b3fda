# Live stages (H100 + ThunderKittens). `resources: gpu=1` with `--resources gpu=1` keeps GPU jobs from overlapping.
# Each bench job writes into its own folder (results/live/jobs/<sweep>/, with that job's provenance.json and
# measured ceilings), then its CSV is copied next to the others.


rule env:
    output:
        "results/live/provenance.json",
    log:
        "results/logs/live/env.log",
    benchmark:
        "results/benchmarks/live/env.tsv"
    params:
        cli=config["cli"],
    resources:
        gpu=1,
    conda:
        "../envs/tkprefix.yaml"
    shell:
        "{params.cli} env --output {output} > {log} 2>&1"


rule build:
    input:
        rules.env.output,
    output:
        touch("results/live/build.done"),
    log:
        "results/logs/live/build.log",
    benchmark:
        "results/benchmarks/live/build.tsv"
    params:
        cli=config["cli"],
    resources:
        gpu=1,
    conda:
        "../envs/tkprefix.yaml"
    shell:
        "{params.cli} build --verbose > {log} 2>&1"


rule check:
    input:
        rules.build.output,
    output:
        "results/live/check.csv",
    log:
        "results/logs/live/check.log",
    benchmark:
        "results/benchmarks/live/check.tsv"
    params:
        cli=config["cli"],
    resources:
        gpu=1,
    conda:
        "../envs/tkprefix.yaml"
    # Exit 1 = some case is wrong: its rows still go to check.csv and into the paper (a wrong kernel is reported,
    # not hidden by a stopped pipeline). Any other failure stops the run.
    shell:
        "{params.cli} check --out results/live > {log} 2>&1 || test $? -eq 1"


# Peers compiled from carried third-party code (upstream ChunkAttention, the prior TK chunk-first kernel), and the
# JIT modules of FlashInfer and the Triton peers (a JIT build inside a supervised bench child looks like a hang). Never
# fails: a peer that does not build is reported in its rows. CPU-only (no gpu resource): it runs beside `check`.
rule build_peers:
    input:
        rules.build.output,
    output:
        touch("results/live/build_peers.done"),
    log:
        "results/logs/live/build_peers.log",
    benchmark:
        "results/benchmarks/live/build_peers.tsv"
    params:
        cli=config["cli"],
    conda:
        "../envs/tkprefix.yaml"
    shell:
        "{params.cli} build-peers > {log} 2>&1"


rule bench:
    input:
        sweep=ancient(sweep_file),
        checked=rules.check.output,
        peers=rules.build_peers.output,
    output:
        "results/live/bench_{sweep}.csv",
    log:
        "results/logs/live/bench_{sweep}.log",
    benchmark:
        "results/benchmarks/live/bench_{sweep}.tsv"
    params:
        cli=config["cli"],
        sweeps=lambda w, input: os.path.dirname(input.sweep),
        deadline=config["bench_deadline_s"],
    wildcard_constraints:
        sweep="|".join(ATTENTION_SWEEPS) or "no-attention-sweep",
    resources:
        gpu=1,
        runtime=config["gpu_runtime_min"],
    conda:
        "../envs/tkprefix.yaml"
    shell:
        "({params.cli} bench --sweeps {params.sweeps} --only {wildcards.sweep} --out results/live/jobs/{wildcards.sweep}"
        " --deadline-s {params.deadline}"
        " && cp results/live/jobs/{wildcards.sweep}/bench_{wildcards.sweep}.csv {output}) > {log} 2>&1"


rule bench_e2e:
    input:
        sweeps=ancient(expand(f"{config['sweeps_dir']}/{{s}}.yaml", s=E2E_SWEEPS)),
        checked=rules.check.output,
        peers=rules.build_peers.output,
    output:
        "results/live/e2e.csv",
    log:
        "results/logs/live/bench_e2e.log",
    benchmark:
        "results/benchmarks/live/bench_e2e.tsv"
    params:
        cli=config["cli"],
        sweeps=lambda w, input: os.path.dirname(input.sweeps[0]),
        only=" ".join(E2E_SWEEPS),
    resources:
        gpu=1,
        runtime=config["gpu_runtime_min"],
    conda:
        "../envs/tkprefix.yaml"
    shell:
        "({params.cli} bench --sweeps {params.sweeps} --only {params.only} --out results/live/jobs/e2e"
        " && cp results/live/jobs/e2e/e2e.csv {output}) > {log} 2>&1"
