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
    assert "bad.csv" in err and "2 feature value(s) per row" in err and "takes 3" in err
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
