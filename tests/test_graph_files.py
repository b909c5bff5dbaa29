"""`nncompile graph -o FILE` writes what the extension says, or refuses clearly
(exit 2): never over the program, never SVG text into a .png."""
import os
import sys
from pathlib import Path

import pytest

from nncompile import cli

SRC = """model m {
  input x: f32[4]
  dense h(6, relu)
  dense o(3, softmax)
}
"""


@pytest.fixture
def prog(tmp_path):
    f = tmp_path / "m.nn"
    f.write_text(SRC)
    return f


def _graph(prog, out, *extra):
    return cli.main(["graph", str(prog), "-o", str(out), *extra])


def test_the_program_is_never_written_over(prog, tmp_path, capsys):
    before = prog.read_bytes()
    assert _graph(prog, prog) == 2
    err = capsys.readouterr().err
    assert "cannot tell the picture's format from '.nn'" in err and "Traceback" not in err
    assert prog.read_bytes() == before
    # the program under a picture's name (a link) is refused too
    link = tmp_path / "m.svg"
    os.symlink(prog, link)
    assert _graph(prog, link) == 2
    assert "that is the program itself" in capsys.readouterr().err
    assert prog.read_bytes() == before


@pytest.mark.parametrize("name", ["g.txt", "g", "g.svgz", "data.csv"])
def test_an_extension_that_names_no_picture_format_is_refused(prog, tmp_path, capsys, name):
    assert _graph(prog, tmp_path / name) == 2
    assert "end the file name with .svg, .html, .png or .pdf" in capsys.readouterr().err
    assert not (tmp_path / name).exists()


def test_a_missing_folder_and_a_folder_are_clear_errors(prog, tmp_path, capsys):
    assert _graph(prog, tmp_path / "nodir" / "x.svg") == 2
    err = capsys.readouterr().err
    assert "the folder" in err and "does not exist" in err and "internal" not in err
    (tmp_path / "pics").mkdir()
    assert _graph(prog, tmp_path / "pics") == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "internal" not in err and os.listdir(tmp_path / "pics") == []


def test_svg_and_html_are_what_they_say(prog, tmp_path):
    assert _graph(prog, tmp_path / "g.svg") == 0
    assert (tmp_path / "g.svg").read_text().startswith("<?xml")
    assert _graph(prog, tmp_path / "g.HTML", "--kernels") == 0
    assert (tmp_path / "g.HTML").read_text().startswith("<!DOCTYPE html>")
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.parametrize("ext, magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF")])
def test_png_and_pdf_are_drawn_with_matplotlib(prog, tmp_path, monkeypatch, ext, magic):
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(sys.modules, "cairosvg", None)   # the matplotlib drawing, not cairosvg's
    for kernels in ((), ("--kernels",)):
        out = tmp_path / f"g{len(kernels)}{ext}"
        assert _graph(prog, out, *kernels) == 0
        data = out.read_bytes()
        assert data.startswith(magic) and len(data) > 2000


def test_png_without_a_renderer_is_refused(prog, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cairosvg", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert _graph(prog, tmp_path / "g.png") == 2
    err = capsys.readouterr().err
    assert "drawing PNG needs cairosvg or matplotlib, and neither is installed" in err
    assert not (tmp_path / "g.png").exists()
    assert _graph(prog, Path(tmp_path / "g.svg")) == 0   # SVG needs nothing
