"""`tkprefix build-peers --check-sources`: the check scripts/bench/device_run.sh stops a recording on."""
from tkprefix.bench import build_peers

SOURCES = ("third_party/chunk-attention/CMakeLists.txt", "ft/kernel_bench/fasttree.py",
           "prior/ThunderKittens/kernels/chunked_attn/attn_chunk_first.cu")


def test_check_sources_names_each_missing_source_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build_peers, "_REPO", tmp_path)
    monkeypatch.setenv("FASTTREE_ARTIFACT_ROOT", str(tmp_path / "ft"))
    monkeypatch.setenv("PRIOR_TK_ROOT", str(tmp_path / "prior"))
    assert build_peers.main(["--check-sources"]) == 2
    err = capsys.readouterr().err
    for name, rel in zip(("upstream ChunkAttention", "FastTree artifact", "prior TK chunk-first kernel"), SOURCES):
        assert f"not carried: {name}: {tmp_path / rel}" in err

    for carried, rel in enumerate(SOURCES, start=1):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
        assert len(build_peers.missing_sources()) == len(SOURCES) - carried
    assert build_peers.main(["--check-sources"]) == 0
