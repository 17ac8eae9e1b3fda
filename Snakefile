# tkprefix: the reproducible pipeline.
#   replay (any machine):  snakemake --cores 2 --config mode=replay         -> paper/build/tkprefix.pdf
#   live   (H100 + TK):    snakemake --cores 8 --resources gpu=1 --config mode=live
# Stages: env -> build -> check -> bench (one job per config/sweeps/*.yaml; e2e: bench_e2e) -> notebooks -> macros
# -> paper.


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"

RUN_LOCK = release_stale_locks()  # resume after a hard kill without --unlock (common.smk says how it stays safe)

MODE = resolve_mode(config["mode"])
DATA = f"results/{MODE}"
SWEEPS = list_sweeps(config["sweeps_dir"], config["sweeps"])  # {name: kind}
ATTENTION_SWEEPS = [s for s, kind in SWEEPS.items() if kind != "e2e"]
E2E_SWEEPS = [s for s, kind in SWEEPS.items() if kind == "e2e"]
NOTEBOOKS = ["correctness", "performance", "peers", "e2e"]

report: "workflow/report/workflow.rst"


rule all:
    input:
        "paper/build/tkprefix.pdf",


include: "workflow/rules/gpu.smk"
include: "workflow/rules/replay.smk"
include: "workflow/rules/notebooks.smk"
include: "workflow/rules/paper.smk"
