"""The Docker image carries the Triton tree peers that the recorded runs used (CI cannot build the image: no Docker,
no GitHub). The Dockerfile extracts them with scripts/bench/extract_tree_peers.sh, which pins the artifact's commit;
that commit must be the one the recorded H200 run's FastTree, DeFT and SGLang rows name."""
import re
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _run_steps(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, comments dropped and continuation lines joined."""
    code = "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    return [s.strip() for s in re.split(r"\n(?=[A-Z]+ )", code.replace("\\\n", " ")) if s.strip()]


def test_image_extracts_the_tree_peers_after_copying_the_sources():
    steps = _run_steps((REPO / "Dockerfile").read_text())
    copy = next(i for i, s in enumerate(steps) if s.startswith("COPY . /opt/tkprefix"))
    peers = [i for i, s in enumerate(steps) if "extract_tree_peers.sh" in s]
    assert len(peers) == 1, "one Dockerfile step runs scripts/bench/extract_tree_peers.sh"
    step = steps[peers[0]]
    assert peers[0] > copy, "the script runs from the copied sources"
    assert "github.com/PanZaifeng/FastTree-Artifact" in step and "FASTTREE_MIRROR=" in step
    assert "bash /opt/tkprefix/scripts/bench/extract_tree_peers.sh" in step
    assert "|| true" not in step and ";" not in step.split("RUN", 1)[1], "every command's failure fails the build"


def test_pinned_artifact_commit_is_the_recorded_runs():
    script = (REPO / "scripts/bench/extract_tree_peers.sh").read_text()
    commit = re.search(r"^COMMIT=([0-9a-f]{40})$", script, re.M).group(1)
    rows = pd.read_csv(REPO / "data/h200/bench_c8_trees.csv")
    notes = rows[rows["impl"].isin(["fasttree", "deft", "sglang_triton"]) & (rows["status"] == "ok")]["note"]
    named = {m for n in notes for m in re.findall(r"FastTree-Artifact ([0-9a-f]{12})", str(n))}
    assert named == {commit[:12]}
