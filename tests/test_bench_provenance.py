"""`tkprefix env` works without a GPU and takes the project commit from the launcher where it is given."""
import json

from tkprefix import provenance


def test_env_json_without_gpu(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TKPREFIX_GIT_COMMIT", "0123abc")
    monkeypatch.setenv("TKPREFIX_GIT_DIRTY", "0")
    out = tmp_path / "p.json"
    assert provenance.main(["--output", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["project"] == {"commit": "0123abc", "dirty": False,
                            "source": "TKPREFIX_GIT_COMMIT (set by the launcher from the checkout it sent)"}
    assert d["thunderkittens"]["commit"] == provenance.TK_PINNED_COMMIT
    for key in ("gpu", "torch", "nvcc", "python", "peers"):
        assert key in d
