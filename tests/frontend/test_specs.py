"""The declarative frontend: one spec row (or one layer definition) is all it
takes for an argument or a layer kind to be checked, defaulted, documented,
reported in errors, lowered and shown; and the docs tables are the specs'."""
import numpy as np
import pytest

from nncompile.compiler import Program
from nncompile.errors import CompileError
from nncompile.frontend import parse_source
from nncompile.frontend.checks import data_file_spec

# ------------------------------------------------------------------ command-line data files

def test_data_file_specs_are_checked_and_defaulted_like_the_language(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    npz = data_file_spec("d.npz")
    assert (npz.kind, npz.args) == ("npz", {"path": str(tmp_path / "d.npz"), "x": "x", "y": "y"})
    csv = data_file_spec("d.csv", target=["y"])
    assert csv.args == {"path": str(tmp_path / "d.csv"), "target": ["y"], "features": None, "header": True}
    assert data_file_spec("d.csv", labelled=False).args["target"] == []
    assert data_file_spec("d.npz", labelled=False).args["y"] is None
    for kw, message in [({"target": []}, "target must not be an empty list"),
                        ({"target": ["y", "y"]}, "target names 'y' twice"),
                        ({"target": ["y"], "features": ["a", "y"]}, "column 'y' is both a feature and a target"),
                        ({}, "csv needs 'target'")]:
        with pytest.raises(CompileError) as ei:
            data_file_spec("d.csv", **kw)
        assert ei.value.message == message


def test_predict_input_reads_through_the_data_loader(tmp_path):
    from nncompile.cli import _read_features
    from nncompile.errors import DataError
    p = Program(parse_source("model m {\n  input x: f32[2, 2]\n  flatten\n  dense o(1)\n}\n"))
    (tmp_path / "x.csv").write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    assert _read_features(str(tmp_path / "x.csv"), p).shape == (2, 2, 2)
    np.savez(tmp_path / "x.npz", x=np.ones((3, 4), np.float32))
    assert _read_features(str(tmp_path / "x.npz"), p).shape == (3, 2, 2)
    (tmp_path / "bad.csv").write_text("1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DataError, match="the first row is numbers, not a header"):
        _read_features(str(tmp_path / "bad.csv"), p)
    (tmp_path / "three.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"3 feature value\(s\) per row, but the model's input 'x' takes 4"):
        _read_features(str(tmp_path / "three.csv"), p)
