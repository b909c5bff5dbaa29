"""Without the [onnx] extra: importing nncompile loads no onnx, and every ONNX
entry point says how to install it (runs on the CPU-only install too)."""
import subprocess
import sys
from pathlib import Path

import pytest

import nncompile
from nncompile import cli
from nncompile.errors import NNError

ROOT = Path(__file__).resolve().parents[2]


def test_importing_nncompile_does_not_import_onnx():
    code = "import sys, nncompile; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.stdout.split() == ["False", "False"], r.stderr


@pytest.fixture
def no_onnx(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)     # `import onnx` raises ImportError


def test_load_and_export_say_how_to_install(no_onnx, tmp_path):
    with pytest.raises(NNError, match="needs the onnx package") as e:
        nncompile.onnx.load(tmp_path / "m.onnx")
    assert e.value.hint == "pip install 'nncompile[onnx]'"
    prog = nncompile.compile(str(ROOT / "examples" / "textbook_regression.nn"))
    with pytest.raises(NNError, match="needs the onnx package"):
        prog.export_onnx(prog.init_params(0), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_import_says_how_to_install(no_onnx, tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"")
    assert cli.main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.nn")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'nncompile[onnx]'" in err and "Traceback" not in err
