"""`tkprefix plan-cost` runs end to end on a tiny tree and prints the machine and one row per size (no timing check:
the figures are a benchmark)."""
from pathlib import Path

import pytest

from tkprefix import plan_cost


def test_plan_cost_prints_the_machine_and_a_row_per_size(capsys):
    assert plan_cost.main(["--seqs", "3", "5", "--shared", "128", "--private", "70", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "logical cores" in out
    rows = [line for line in out.splitlines() if line.startswith("| 3 |") or line.startswith("| 5 |")]
    assert len(rows) == 2 and all(row.count("|") == 9 and "n/a" not in row for row in rows)


def test_only_the_host_half_of_a_step_is_judged_against_the_step_target(capsys):
    """The step target is host cost; the column that also runs the device half on the CPU gets no verdict."""
    assert plan_cost.main(["--seqs", "128", "--shared", "64", "--private", "8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| seqs"))
    row = next(line for line in out.splitlines() if line.startswith("| 128 |"))
    cells = dict(zip(header.split("|")[1:-1], row.split("|")[1:-1]))
    assert "<= 20" in cells[" step host (us) "] and "<=" not in cells[" step + device half on CPU (us) [1] "]
    assert "add_seqs" in out and "[1] " in out


def test_plan_cost_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        plan_cost.main(["--seqs", "0"])
    with pytest.raises(SystemExit):
        plan_cost.main(["--private", "-1"])


def test_plan_cost_tree_table_reaches_ideal_sharing(capsys):
    sweep = Path(__file__).resolve().parents[1] / "config" / "sweeps" / "c8_trees.yaml"
    assert plan_cost.main(["--seqs", "3", "--shared", "64", "--private", "1", "--repeats", "1", "--trees",
                           str(sweep)]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| wide")
            or line.startswith("| binary10")]
    assert len(rows) == 3  # wide1024, wide4096, binary10
    for row in rows:
        achieved, ideal = row[-1].split("/")
        assert float(achieved) == float(ideal) > 1
