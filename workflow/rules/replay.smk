# Replay: the primary recorded run (the first of config recorded_dirs that exists) becomes this run's data, with its
# provenance and checksums. compare_rerun: how closely a second run on the same GPU agrees (tkprefix compare).


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
        src=primary_run(),
        digest=content_digest(primary_run()),
    conda:
        "../envs/tkprefix.yaml"
    script:
        "../scripts/replay.py"


rule compare_rerun:
    input:
        data=data_inputs,
        rerun=lambda w: run_files(rerun_dir()) if rerun_dir() else [],
    output:
        "results/compare/rerun.json",
    log:
        "results/logs/compare/rerun.log",
    benchmark:
        "results/benchmarks/compare/rerun.tsv"
    params:
        cli=config["cli"],
        data=DATA,
        rerun=rerun_dir(),
        digest=content_digest(rerun_dir()) if rerun_dir() else "",
    conda:
        "../envs/tkprefix.yaml"
    shell:
        "{params.cli} compare {params.data} {params.rerun} --json {output} > {log} 2>&1"
