# Replay: the recorded H100 run (data/h100) becomes this run's data, with its provenance and checksums.


rule replay:
    input:
        recorded_files,
    output:
        manifest="results/replay/manifest.json",
    log:
        "results/logs/replay/replay.log",
    benchmark:
        "results/benchmarks/replay/replay.tsv"
    params:
        src=config["recorded_dir"],
    conda:
        "../envs/tkprefix.yaml"
    script:
        "../scripts/replay.py"
