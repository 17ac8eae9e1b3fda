"""`tkprefix check`'s oracle and bookkeeping, run on the exact PyTorch backend on the CPU."""
from tkprefix.bench import check, schema


def test_check_suite_passes_on_torch_backend(tmp_path):
    rows = check.run_check("torch", "cpu", "float32", log=lambda m: None, big=False)
    assert rows and all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"]
    assert {r["op"] for r in rows} == {"prefix_attention", "decode_attention", "hydragen_attention_nopad",
                                       "chunk_attention", "tree_attention"}
    schema.write_csv(tmp_path / "check.csv", rows, schema.CHECK_COLUMNS)
    assert len(schema.read_csv(tmp_path / "check.csv")) == len(rows)
