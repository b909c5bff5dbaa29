"""Pre-flight checks: the program against its loaded data."""
import numpy as np
import pytest

from nncompile.compiler import Program
from nncompile.errors import CompileError, DataError, TrainingError
from nncompile.frontend import parse_source
from nncompile.runtime.data import Dataset
from nncompile.runtime.preflight import CompileWarning, preflight


def program(train_lines, out="dense out(3, softmax)", layers="dense h(4, relu)"):
    src = f"""model m {{
  input x: f32[4]
  {layers}
  {out}
}}
train {{
""" + "".join(f"  {l}\n" for l in train_lines) + "}\n"
    return Program(parse_source(src, "model.nn"))


SPARSE = ["loss = sparse_categorical_crossentropy", "optimizer = sgd", "metrics = [accuracy]", "epochs = 20"]


def ds(y, name="train.csv", n=None):
    y = np.asarray(y)
    return Dataset(np.zeros((len(y), 4), np.float32), y, name)


def test_clean_program_has_no_warnings():
    p = program(SPARSE)
    assert preflight(p, ds([0, 1, 2, 1]), ds([0, 1, 2])) == []


def test_label_out_of_range_names_the_first_bad_sample():
    p = program(SPARSE)
    with pytest.raises(DataError) as e:
        preflight(p, ds([0, 1, 2, 3, 5]), None)
    assert "train.csv: sample 3 has label 3, but the model has 3 output units" in e.value.message
    assert "6 units wide" in e.value.hint
    with pytest.raises(DataError, match="sample 1 has label -1"):
        preflight(p, ds([0, -1]), None)
    with pytest.raises(DataError, match="sample 0 has label 0.5"):
        preflight(p, ds(np.array([0.5, 1.0])), None)
    with pytest.raises(DataError, match="val.csv: sample 2 has label 7"):
        preflight(p, ds([0, 1, 2]), ds([0, 1, 7], "val.csv"))


def test_binary_and_categorical_targets_in_unit_range():
    p = program(["loss = binary_crossentropy", "optimizer = sgd"], out="dense out(1, sigmoid)")
    with pytest.raises(DataError) as e:
        preflight(p, ds(np.array([[0.0], [1.0], [2.0]], np.float32)), None)
    assert "sample 2 has target 2, but binary_crossentropy needs targets in [0, 1]" in e.value.message
    p = program(["loss = categorical_crossentropy", "optimizer = sgd"])
    with pytest.raises(DataError, match="sample 1: the targets sum to 2"):
        preflight(p, ds(np.array([[1, 0, 0], [1, 1, 0]], np.float32)), None)
    with pytest.raises(DataError, match="non-finite target"):
        preflight(p, ds(np.array([[1, 0, 0], [np.nan, 1, 0]], np.float32)), None)


def test_val_monitor_without_validation_data_is_an_error():
    p = program(SPARSE + ["validation = split(0.2)", "early_stopping = { monitor: val_loss, patience: 3 }"])
    with pytest.raises(TrainingError) as e:
        preflight(p, ds([0, 1, 2]), None)
    assert "early_stopping monitors 'val_loss' but there is no validation data" in e.value.message
    assert (e.value.loc.line, e.value.loc.column) == (12, 20)
    p = program(SPARSE + ["validation = split(0.2)", "schedule = reduce_on_plateau(monitor=val_accuracy, patience=2)"])
    with pytest.raises(TrainingError) as e:
        preflight(p, ds([0, 1, 2]), None)
    assert "reduce_on_plateau monitors 'val_accuracy'" in e.value.message
    assert e.value.loc.line == 12


def test_patience_at_least_epochs_warns_with_location():
    p = program(SPARSE + ["early_stopping = { monitor: loss, patience: 20 }",
                          "schedule = reduce_on_plateau(patience=25)"])
    w = preflight(p, ds([0, 1, 2]), None)
    assert len(w) == 2 and all(isinstance(x, CompileWarning) for x in w)
    assert "early_stopping patience (20) >= epochs (20)" in w[0].message
    assert str(w[0]).startswith("model.nn:11:20: warning: early_stopping patience")
    assert "reduce_on_plateau patience (25) >= epochs (20)" in w[1].message
    assert str(w[1]).startswith("model.nn:12:41: warning:")
    # a run with more epochs (the CLI's --epochs) is fine
    assert preflight(p, ds([0, 1, 2]), None, epochs=30) == []


def test_class_missing_from_validation_warns():
    p = program(SPARSE + ["validation = split(0.2)"])
    w = preflight(p, ds([0, 1, 2, 2]), ds([0, 1], "validation split"))
    assert len(w) == 1
    assert "1 class of the training data is missing from the validation data (validation split): 2" in w[0].message
    assert "stratify=true" in w[0].hint
    assert str(w[0]).startswith("model.nn:11:16: warning:")
    p = program(["loss = categorical_crossentropy", "optimizer = sgd", "validation = split(0.5, stratify=true)"])
    eye = np.eye(3, dtype=np.float32)
    w = preflight(p, ds(eye[[0, 1, 2]]), ds(eye[[0, 0]]))
    assert "2 classes" in w[0].message and "1, 2" in w[0].message and "stratify" not in (w[0].hint or "")


def test_binary_crossentropy_on_softmax_warns():
    p = program(["loss = binary_crossentropy", "optimizer = sgd"])
    w = preflight(p, ds(np.eye(3, dtype=np.float32)[[0, 1, 2]]), None)
    assert len(w) == 1 and "binary_crossentropy on a softmax output with 3 units" in w[0].message
    assert str(w[0]).startswith("model.nn:7:10: warning:")
    # one softmax unit is odd but not this warning's business; sigmoid is fine
    p = program(["loss = binary_crossentropy", "optimizer = sgd"], out="dense out(3, sigmoid)")
    assert preflight(p, ds(np.eye(3, dtype=np.float32)[[0, 1, 2]]), None) == []


def test_from_logits_with_softmax_is_still_a_frontend_error():
    with pytest.raises(CompileError, match="from_logits=true but the model's last layer already applies softmax"):
        program(["loss = sparse_categorical_crossentropy(from_logits=true)", "optimizer = sgd"])


def test_everything_frozen_warns():
    p = program(SPARSE, layers="dense h(4, relu, frozen=true)", out="dense out(3, softmax, lr_mult=0)")
    w = preflight(p, ds([0, 1, 2]), None)
    assert len(w) == 1 and "every layer is frozen" in w[0].message


def test_no_train_block():
    p = Program(parse_source("model m {\n  input x: f32[2]\n  dense o(1)\n}\n", "model.nn"))
    assert preflight(p, None, None) == []
