"""`tkprefix plan-cost` runs end to end on a tiny tree and prints the machine and one row per size (no timing check:
the figures are a benchmark)."""
import pytest

from tkprefix import plan_cost


def test_plan_cost_prints_the_machine_and_a_row_per_size(capsys):
    assert plan_cost.main(["--seqs", "3", "5", "--shared", "128", "--private", "70", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "logical cores" in out
    rows = [line for line in out.splitlines() if line.startswith("| 3 |") or line.startswith("| 5 |")]
    assert len(rows) == 2 and all(row.count("|") == 9 and "n/a" not in row for row in rows)


def test_plan_cost_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        plan_cost.main(["--seqs", "0"])
    with pytest.raises(SystemExit):
        plan_cost.main(["--private", "-1"])
