# Live stages (H100 + ThunderKittens). `resources: gpu=1` with `--resources gpu=1` keeps GPU jobs from overlapping.


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
        "{params.cli} env --out {output} > {log} 2>&1"


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
        "{params.cli} build > {log} 2>&1"


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
    shell:
        "{params.cli} check --out {output} > {log} 2>&1"


rule bench:
    input:
        sweep=ancient(sweep_file),
        checked=rules.check.output,
    output:
        "results/live/bench_{sweep}.csv",
    log:
        "results/logs/live/bench_{sweep}.log",
    benchmark:
        "results/benchmarks/live/bench_{sweep}.tsv"
    params:
        cli=config["cli"],
    resources:
        gpu=1,
        runtime=config["gpu_runtime_min"],
    conda:
        "../envs/tkprefix.yaml"
    shell:
        "{params.cli} bench --config {wildcards.sweep} --out {output} > {log} 2>&1"
