# Paper: provenance + per-notebook macros -> paper/generated/macros.tex; latexmk -> paper/build/tkprefix.pdf
# (built in a scratch folder and renamed into place: an interrupted build never leaves a half-written PDF).


rule macros:
    input:
        parts=expand(f"{GEN}/macros_{{nb}}.tex", nb=NOTEBOOKS),
        data=data_inputs,
    output:
        macros=f"{GEN}/macros.tex",
        repro=f"{GEN}/tables/repro.tex",
    log:
        "results/logs/paper/macros.log",
    params:
        data=DATA,
        mode=MODE,
        benchmarks="results/benchmarks",
        sweeps=SWEEPS,
        lib=f"{workflow.basedir}/notebooks",
    conda:
        "../envs/tkprefix.yaml"
    script:
        "../scripts/macros.py"


rule paper:
    input:
        tex="paper/tkprefix.tex",
        sections=sorted(Path("paper/sections").glob("*.tex")),
        macros=rules.macros.output,
        correctness=rules.notebook_correctness.output,
        performance=rules.notebook_performance.output,
        peers=rules.notebook_peers.output,
        e2e=rules.notebook_e2e.output,
    output:
        report("paper/build/tkprefix.pdf", category="Paper"),
    log:
        "results/logs/paper/latexmk.log",
    benchmark:
        "results/benchmarks/paper/latexmk.tsv"
    params:
        data=DATA,
    conda:
        "../envs/tkprefix.yaml"
    script:
        "../scripts/paper.py"
