"""CSV columns of text class labels ("cat", "dog"): numbered by sorted name, the
mapping saved in the run folder (labels.json) and in every weights file,
validation and evaluation files numbered the same way, and `predict` writing
the names back."""
import json

import numpy as np
import pytest

import nncompile
from nncompile import cli
from nncompile.errors import DataError
from nncompile.frontend.checks import data_file_spec
from nncompile.runtime import data as datamod
from nncompile.runtime.weights import load_arrays, load_weights

NAMES = ("bird", "cat", "dog")       # sorted: the class indices 0, 1, 2
SRC = """model m {
  input x: f32[2]
  dense h(8, tanh)
  dense o(3, softmax)
}
train {
  data = csv("train.csv", target=["animal"])
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.05)
  metrics = [accuracy]
  epochs = 30
  batch_size = 16
  VALIDATION
}
"""


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    centers = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    return (centers[k] + 0.4 * rng.normal(size=(n, 2))).astype(np.float32), k


def _write(path, x, k, names=NAMES):
    path.write_text("a,b,animal\n" + "".join(f"{r[0]!r},{r[1]!r},{names[i]}\n" for r, i in zip(x.tolist(), k)))


@pytest.fixture
def trained(tmp_path):
    x, k = _rows(90)
    _write(tmp_path / "train.csv", x, k)
    (tmp_path / "m.nn").write_text(SRC.replace("VALIDATION", ""))
    assert cli.main(["run", str(tmp_path / "m.nn"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return tmp_path, x, k


def test_text_labels_are_numbered_by_sorted_name(tmp_path):
    x, k = _rows(12)
    _write(tmp_path / "t.csv", x, k)
    ds = datamod.load_data(data_file_spec(str(tmp_path / "t.csv"), target=["animal"]), label_kind="class")
    assert ds.label_names == NAMES and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, k)
    tr, va = datamod.split(ds, 0.25, seed=0)
    assert tr.label_names == va.label_names == NAMES


def test_the_mapping_is_saved_and_predict_writes_the_names(trained):
    d, x, k = trained
    assert json.loads((d / "run" / "labels.json").read_text()) == {"classes": list(NAMES)}
    _, meta = load_arrays(str(d / "run" / "weights_final.npz"))
    assert meta["labels"] == list(NAMES)
    new, kn = _rows(10, seed=1)
    (d / "new.csv").write_text("a,b\n" + "".join(f"{r[0]!r},{r[1]!r}\n" for r in new.tolist()))
    assert cli.main(["predict", str(d / "m.nn"), "--weights", str(d / "run"), "--input", str(d / "new.csv"),
                     "--output", str(d / "out.csv")]) == 0
    lines = (d / "out.csv").read_text().splitlines()
    assert lines[0] == "class,p_bird,p_cat,p_dog"
    prog = nncompile.compile(str(d / "m.nn"))
    want = prog.predict(load_weights(str(d / "run"), prog), new).argmax(1)
    assert [l.split(",")[0] for l in lines[1:]] == [NAMES[i] for i in want]
    assert np.mean([l.split(",")[0] == NAMES[i] for l, i in zip(lines[1:], kn)]) >= 0.8   # it learned


def test_evaluate_numbers_a_text_file_as_training_did(trained, capsys):
    d, x, k = trained
    # a file with only two of the classes: its own sorted numbering would differ
    sub = k != 0
    _write(d / "test.csv", x[sub], k[sub])
    capsys.readouterr()
    assert cli.main(["evaluate", str(d / "m.nn"), "--weights", str(d / "run"), "--data", str(d / "test.csv")]) == 0
    acc = float(capsys.readouterr().out.split("accuracy: ")[1])
    prog = nncompile.compile(str(d / "m.nn"))
    pred = prog.predict(load_weights(str(d / "run"), prog), x[sub]).argmax(1)
    assert acc == pytest.approx(float(np.mean(pred == k[sub])), abs=1e-6) and acc > 0.8


def test_validation_data_is_numbered_as_the_training_data(tmp_path):
    x, k = _rows(60)
    _write(tmp_path / "train.csv", x, k)
    xv, kv = _rows(20, seed=2)
    keep = kv != 0
    _write(tmp_path / "val.csv", xv[keep], kv[keep])
    (tmp_path / "m.nn").write_text(SRC.replace("VALIDATION", 'validation = csv("val.csv", target=["animal"])'))
    prog = nncompile.compile(str(tmp_path / "m.nn"))
    from nncompile.runtime.evaluation import load_datasets
    train, val = load_datasets(prog)
    assert val.label_names == NAMES
    np.testing.assert_array_equal(val.y, kv[keep])           # cat = 1, dog = 2, as in training
    _write(tmp_path / "val.csv", xv, kv, names=("fish", "cat", "dog"))
    with pytest.raises(DataError, match="has label 'fish', which .*train.csv does not have"):
        load_datasets(nncompile.compile(str(tmp_path / "m.nn")))


def test_text_labels_are_checked(tmp_path):
    x, k = _rows(12)
    _write(tmp_path / "train.csv", x, k)
    src = SRC.replace("VALIDATION", "")
    (tmp_path / "m.nn").write_text(src.replace("sparse_categorical_crossentropy", "mse").replace(
        "dense o(3, softmax)", "dense o(1)").replace("metrics = [accuracy]", ""))
    with pytest.raises(DataError, match="'bird' is not a number|'cat' is not a number|'dog' is not a number") as e:
        nncompile.compile(str(tmp_path / "m.nn")).fit(quiet=True)
    assert "sparse_categorical_crossentropy" in e.value.hint
    (tmp_path / "m.nn").write_text(src.replace("dense o(3, softmax)", "dense o(2, softmax)"))
    with pytest.raises(DataError, match=r"the labels name 3 classes \(bird, cat, dog\), but the model has 2"):
        nncompile.compile(str(tmp_path / "m.nn")).fit(quiet=True)
    (tmp_path / "train.csv").write_text("a,b,animal\n1,2,cat\n3,4,\n")
    (tmp_path / "m.nn").write_text(src)
    with pytest.raises(DataError, match="row 3, column 'animal': the label is empty"):
        nncompile.compile(str(tmp_path / "m.nn")).fit(quiet=True)
    (tmp_path / "train.csv").write_text("a,b,animal\n1,2,cat\n3,4,1\n")     # mixed: not taken for names
    with pytest.raises(DataError, match="row 2, column 'animal': 'cat' is not a number"):
        nncompile.compile(str(tmp_path / "m.nn")).fit(quiet=True)
