"""`nncompile predict` and `nncompile evaluate` with the weights of a run."""
import numpy as np
import pytest

import nncompile
from nncompile import cli
from nncompile.runtime.weights import load_weights

SRC = """model m {
  input x: f32[3]
  dense h(8, relu)
  dense o(2, softmax)
}
train {
  data = csv("train.csv", target=["label"])
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.05)
  metrics = [accuracy]
  epochs = 20
  batch_size = 16
}
"""


@pytest.fixture
def trained(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    (tmp_path / "train.csv").write_text("a,b,c,label\n" + "".join(
        f"{r[0]},{r[1]},{r[2]},{l}\n" for r, l in zip(x, y)))
    (tmp_path / "m.nn").write_text(SRC)
    assert cli.main(["run", str(tmp_path / "m.nn"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return tmp_path, x, y


def test_predict_csv_matches_the_python_api(trained, capsys):
    d, x, y = trained
    (d / "new.csv").write_text("a,b,c\n" + "".join(f"{r[0]},{r[1]},{r[2]}\n" for r in x[:5]))
    assert cli.main(["predict", str(d / "m.nn"), "--weights", str(d / "run"), "--input", str(d / "new.csv"),
                     "--output", str(d / "out.csv")]) == 0
    lines = (d / "out.csv").read_text().splitlines()
    assert lines[0] == "class,p0,p1" and len(lines) == 6
    prog = nncompile.compile(str(d / "m.nn"))
    want = prog.predict(load_weights(str(d / "run" / "weights_final.npz"), prog), x[:5])
    got = np.array([[float(v) for v in l.split(",")[1:]] for l in lines[1:]])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert [int(l.split(",")[0]) for l in lines[1:]] == list(want.argmax(1))
    # .npz input, to stdout
    np.savez(d / "new.npz", x=x[:2])
    capsys.readouterr()
    assert cli.main(["predict", str(d / "m.nn"), "--weights", str(d / "run" / "weights_final.npz"),
                     "--input", str(d / "new.npz")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "class,p0,p1"


def test_predict_errors_are_clear(trained, capsys):
    d, x, y = trained
    (d / "bad.csv").write_text("a,b\n1,2\n")
    assert cli.main(["predict", str(d / "m.nn"), "--weights", str(d / "run"), "--input", str(d / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "the header lacks the model's feature column c" in err
    (d / "bad.csv").write_text("a,b,c\n1,2,x\n")
    assert cli.main(["predict", str(d / "m.nn"), "--weights", str(d / "run"), "--input", str(d / "bad.csv")]) == 2
    assert "row 2, column 'c': 'x' is not a number" in capsys.readouterr().err
    (d / "m2.nn").write_text(SRC.replace("dense h(8, relu)", "dense h(4, relu)"))
    assert cli.main(["predict", str(d / "m2.nn"), "--weights", str(d / "run"), "--input", str(d / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "does not fit model 'm'" in err and "Traceback" not in err
    assert cli.main(["predict", str(d / "m.nn"), "--weights", str(d / "nope"), "--input", str(d / "bad.csv")]) == 2
    assert "no such weights file" in capsys.readouterr().err


def test_evaluate_on_the_train_data_and_on_a_file(trained, capsys):
    d, x, y = trained
    capsys.readouterr()
    assert cli.main(["evaluate", str(d / "m.nn"), "--weights", str(d / "run")]) == 0
    out = capsys.readouterr().out
    assert "weights: " in out and "weights_final.npz" in out
    train_line = [l for l in out.splitlines() if l.startswith("train (60 samples)")][0]
    acc = float(train_line.split("accuracy: ")[1])
    assert acc > 0.8
    (d / "test.csv").write_text("a,b,c,label\n" + "".join(f"{r[0]},{r[1]},{r[2]},{l}\n" for r, l in zip(x[:10], y[:10])))
    assert cli.main(["evaluate", str(d / "m.nn"), "--weights", str(d / "run"), "--data", str(d / "test.csv")]) == 0
    out = capsys.readouterr().out
    assert "test.csv (10 samples): loss: " in out and "accuracy: " in out
    np.savez(d / "test.npz", x=x[:10], y=y[:10])
    assert cli.main(["evaluate", str(d / "m.nn"), "--weights", str(d / "run"), "--data", str(d / "test.npz")]) == 0
    out2 = capsys.readouterr().out
    assert out2.split("samples): ")[1] == out.split("samples): ")[1]


def _csv(path, names, rows):
    path.write_text(",".join(names) + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows))


def test_predict_matches_columns_by_name_and_refuses_foreign_headers(trained, capsys):
    d, x, y = trained
    args = ["predict", str(d / "m.nn"), "--weights", str(d / "run"), "--input"]
    _csv(d / "same.csv", ["a", "b", "c"], x[:6])
    _csv(d / "shuffled.csv", ["c", "a", "b"], x[:6, [2, 0, 1]])
    outs = []
    for name in ("same.csv", "shuffled.csv"):
        assert cli.main(args + [str(d / name)]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]                      # reordered columns: the same predictions
    _csv(d / "foreign.csv", ["p", "q", "r"], x[:6])
    assert cli.main(args + [str(d / "foreign.csv")]) == 2
    err = capsys.readouterr().err
    assert "lacks the model's feature columns a, b, c" in err and "not trained on: p, q, r" in err
    _csv(d / "with_label.csv", ["label", "b", "a", "c"], np.c_[y[:6], x[:6, [1, 0, 2]]])
    assert cli.main(args + [str(d / "with_label.csv")]) == 0    # the target column is ignored
    assert capsys.readouterr().out == outs[0]


def test_evaluate_reads_columns_by_name(trained, capsys):
    d, x, y = trained
    args = ["evaluate", str(d / "m.nn"), "--weights", str(d / "run"), "--data"]
    _csv(d / "eval.csv", ["a", "b", "c", "label"], np.c_[x[:30], y[:30]])
    _csv(d / "eval2.csv", ["label", "c", "b", "a"], np.c_[y[:30], x[:30, ::-1]])
    res = []
    for name in ("eval.csv", "eval2.csv"):
        assert cli.main(args + [str(d / name)]) == 0
        res.append(capsys.readouterr().out.splitlines()[-1].split(":", 1)[1])
    assert res[0] == res[1]


def test_evaluate_checks_labels_as_run_does(trained, capsys):
    d, x, y = trained
    _csv(d / "bad.csv", ["a", "b", "c", "label"], np.c_[x[:5], [0, 1, 2, 0, 1]])   # label 2: 2 output units
    assert cli.main(["evaluate", str(d / "m.nn"), "--weights", str(d / "run"), "--data", str(d / "bad.csv")]) == 2
    assert "has label 2, but the model has 2 output units" in capsys.readouterr().err
    assert cli.main(["evaluate", str(d / "m.nn"), "--weights", str(d / "run"), "--data", str(d / "bad.csv"),
                     "--target", "a"]) == 2
    assert "column 'a' is both a feature and a target" in capsys.readouterr().err
