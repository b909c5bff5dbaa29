"""Tests for nncompile.runtime.data: loaders, their errors, split and batches."""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from nncompile.errors import DataError, SourceLoc
from nncompile.frontend.ast import DataSpec
from nncompile.runtime.data import Dataset, batches, fits_input, load_data, one_hot, split

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


@pytest.fixture
def nn(tmp_path):
    """A fake .nn location next to tmp files, so names show as 'data/x.csv'."""
    (tmp_path / "data").mkdir()
    return tmp_path


def loc_for(tmp_path):
    return SourceLoc(str(tmp_path / "model.nn"), 7, 3)


def csv_spec(tmp_path, text, *, target=("y",), features=None, header=True, name="data/t.csv",
             raw=None):
    p = tmp_path / name
    if raw is not None:
        p.write_bytes(raw)
    elif text is not None:
        p.write_text(text)
    args = {"path": str(p), "target": list(target), "features": features, "header": header}
    return DataSpec("csv", args, loc_for(tmp_path))


def npz_spec(tmp_path, name="data/t.npz", **keys):
    return DataSpec("npz", {"path": str(tmp_path / name), **keys}, loc_for(tmp_path))


def err(spec, **kw) -> DataError:
    with pytest.raises(DataError) as ei:
        load_data(spec, **kw)
    e = ei.value
    assert e.loc == spec.loc
    return e


# ------------------------------------------------------------------------- csv

def test_csv_basic_class_labels(nn):
    ds = load_data(csv_spec(nn, "a,b,y\n1,2,0\n3.5,-4e-1,1\n\n\n"), label_kind="class")
    assert ds.name == os.path.join("data", "t.csv")
    assert ds.x.dtype == np.float32 and ds.x.shape == (2, 2) and ds.x.flags.c_contiguous
    np.testing.assert_allclose(ds.x, [[1, 2], [3.5, -0.4]], rtol=1e-6)
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1]
    assert len(ds) == 2


def test_csv_float_labels_integral_accepted_for_class(nn):
    ds = load_data(csv_spec(nn, "a,y\n1,2.0\n3,0.0\n"), label_kind="class")
    assert ds.y.tolist() == [2, 0]


def test_csv_auto_kind(nn):
    assert load_data(csv_spec(nn, "a,y\n1,2\n3,0\n")).y.dtype == np.int64
    ds = load_data(csv_spec(nn, "a,y\n1,2.5\n3,0\n"))
    assert ds.y.dtype == np.float32 and ds.y.shape == (2, 1)


def test_csv_float_targets_and_features_subset(nn):
    spec = csv_spec(nn, "id,a,b,t1,t2\nfoo,1,2,3,4\nbar,5,6,7,8\n", target=["t1", "t2"],
                    features=["b", "a"])
    ds = load_data(spec, label_kind="float")
    assert ds.x.tolist() == [[2, 1], [6, 5]]  # features in the order given; 'id' ignored
    assert ds.y.dtype == np.float32 and ds.y.tolist() == [[3, 4], [7, 8]]


def test_csv_no_header_columns_named_c(nn):
    ds = load_data(csv_spec(nn, "1,2,0\n3,4,1\n", target=["c2"], header=False))
    assert ds.x.tolist() == [[1, 2], [3, 4]] and ds.y.tolist() == [0, 1]
    e = err(csv_spec(nn, "1,2,0\n3,4,1\n", target=["y"], header=False))
    assert "'y'" in e.message and "c0..c2" in e.hint


def test_csv_quotes_bom_crlf(nn):
    raw = b"\xef\xbb\xbf\"a\",y\r\n\"1.5\",1\r\n2,0\r\n"
    ds = load_data(csv_spec(nn, None, raw=raw))
    assert ds.x[:, 0].tolist() == [1.5, 2.0]


def test_csv_feature_shape_reshape_and_mismatch(nn):
    text = "a,b,c,d,y\n1,2,3,4,0\n"
    assert load_data(csv_spec(nn, text), feature_shape=(2, 2)).x.shape == (1, 2, 2)
    e = err(csv_spec(nn, text), feature_shape=(3,))
    assert "4 feature columns" in e.message and "[3]" in e.message


def test_csv_missing_file(nn):
    spec = DataSpec("csv", {"path": str(nn / "data" / "nope.csv"), "target": ["y"], "features": None,
                            "header": True}, loc_for(nn))
    e = err(spec)
    assert "nope.csv" in e.message and "not found" in e.message


def test_csv_empty_and_header_only(nn):
    assert "empty" in err(csv_spec(nn, "")).message
    assert "empty" in err(csv_spec(nn, "\n\n  \n")).message
    e = err(csv_spec(nn, "a,y\n\n"))
    assert "t.csv" in e.message and "no data rows" in e.message and "row 1" in e.message


def test_csv_unknown_column_did_you_mean(nn):
    e = err(csv_spec(nn, "x0,x1,label\n1,2,0\n", target=["lable"]))
    assert "t.csv" in e.message and "row 1" in e.message and "'lable'" in e.message
    assert "x0, x1, label" in e.hint and "did you mean 'label'" in e.hint
    e = err(csv_spec(nn, "x0,x1,label\n1,2,0\n", target=["label"], features=["x0", "x2"]))
    assert "'x2'" in e.message and "feature" in e.message


def test_csv_header_looks_like_data_hint(nn):
    e = err(csv_spec(nn, "1,2,0\n3,4,1\n", target=["y"]))
    assert "header=false" in e.hint


def test_csv_missing_and_extra_cells(nn):
    e = err(csv_spec(nn, "a,b,y\n1,2,0\n3,4\n"))
    assert "t.csv: row 3, column 'y'" in e.message and "missing" in e.message
    e = err(csv_spec(nn, "a,b,y\n1,2,0\n3,4,1,9\n"))
    assert "t.csv: row 3" in e.message and "4 cells" in e.message and "'9'" in e.message


def test_csv_empty_cell(nn):
    e = err(csv_spec(nn, "a,b,y\n1,2,0\n3,,1\n"))
    assert "t.csv: row 3, column 'b'" in e.message and "empty" in e.message


def test_csv_non_numeric(nn):
    e = err(csv_spec(nn, "x0,x3,y\n1,2,0\n\n1,abc,1\n"))
    assert e.message == os.path.join("data", "t.csv") + ": row 4, column 'x3': 'abc' is not a number"
    rendered = str(e)
    assert rendered.startswith(str(nn / "model.nn") + ":7:3: error:")


def test_csv_unused_non_numeric_column_is_fine(nn):
    ds = load_data(csv_spec(nn, "name,a,y\nbob,1,0\n", features=["a"]))
    assert ds.x.tolist() == [[1.0]]


@pytest.mark.parametrize("cell,word", [("nan", "NaN"), ("NaN", "NaN"), ("inf", "infinite"),
                                       ("-Infinity", "infinite"), ("1e999", "infinite")])
def test_csv_nonfinite_refused(nn, cell, word):
    e = err(csv_spec(nn, f"a,b,y\n1,2,0\n1,{cell},1\n"))
    assert "row 3, column 'b'" in e.message and word in e.message


def test_csv_too_large_for_float32(nn):
    e = err(csv_spec(nn, "a,y\n1e300,0\n"))
    assert "row 2, column 'a'" in e.message and "float32" in e.message


def test_csv_bad_labels(nn):
    e = err(csv_spec(nn, "a,y\n1,0\n2,-1\n"), label_kind="class")
    assert "row 3, column 'y'" in e.message and "negative" in e.message
    e = err(csv_spec(nn, "a,y\n1,0\n2,1.5\n"), label_kind="class")
    assert "row 3, column 'y'" in e.message and "not an integer" in e.message
    e = err(csv_spec(nn, "a,y,z\n1,0,1\n", target=["y", "z"]), label_kind="class")
    assert "one target" in e.message


def test_csv_non_utf8(nn):
    raw = "a,b,y\n1,2,0\n".encode() + b"3,\xff\xfe,1\n"
    e = err(csv_spec(nn, None, raw=raw))
    assert "t.csv: row 3, column 'b'" in e.message and "UTF-8" in e.message


def test_csv_bad_quoting(nn):
    e = err(csv_spec(nn, 'a,y\n1,0\n"2,1\n'))
    assert "t.csv: row 3" in e.message


def test_csv_duplicate_header(nn):
    e = err(csv_spec(nn, "a,a,y\n1,2,0\n"))
    assert "row 1 (header)" in e.message and "'a'" in e.message


def test_csv_target_also_feature(nn):
    e = err(csv_spec(nn, "a,y\n1,0\n", features=["a", "y"]))
    assert "'y'" in e.message and "both" in e.message


def test_example_regression_csv():
    path = os.path.abspath(os.path.join(EXAMPLES, "data", "regression.csv"))
    spec = DataSpec("csv", {"path": path, "target": ["y0", "y1"], "features": None, "header": True},
                    SourceLoc(os.path.join(os.path.dirname(path), "..", "r.nn"), 1, 1))
    ds = load_data(spec, feature_shape=(10,), label_kind="float")
    assert ds.x.shape == (200, 10) and ds.y.shape == (200, 2)
    # it really is linear + small noise
    a = np.hstack([ds.x, np.ones((200, 1), np.float32)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, ds.y.astype(np.float64), rcond=None)
    assert np.std(a @ coef - ds.y) < 0.15


# ------------------------------------------------------------------------- npz

def test_npz_basic(nn):
    np.savez(nn / "data" / "t.npz", feats=np.arange(12, dtype=np.float64).reshape(3, 2, 2),
             labels=np.array([0, 2, 1], np.uint8))
    ds = load_data(npz_spec(nn, x="feats", y="labels"), feature_shape=(4,))
    assert ds.x.shape == (3, 4) and ds.x.dtype == np.float32 and ds.x.flags.c_contiguous
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 2, 1]
    ds = load_data(npz_spec(nn, x="feats", y="labels"), label_kind="float")
    assert ds.y.shape == (3, 1) and ds.x.shape == (3, 2, 2)


def test_npz_float_y_auto_is_float(nn):
    np.savez(nn / "data" / "t.npz", x=np.zeros((3, 2)), y=np.ones(3))
    ds = load_data(npz_spec(nn))
    assert ds.y.dtype == np.float32 and ds.y.shape == (3, 1)
    assert load_data(npz_spec(nn), label_kind="class").y.tolist() == [1, 1, 1]


def test_npz_missing_key_lists_keys(nn):
    np.savez(nn / "data" / "t.npz", inputs=np.zeros((2, 2)), y=np.zeros(2))
    e = err(npz_spec(nn))
    assert "t.npz" in e.message and "'x'" in e.message and "inputs, y" in e.hint


def test_npz_object_array_refused_without_unpickling(nn, monkeypatch):
    np.savez(nn / "data" / "t.npz", x=np.array([[1], "a"], dtype=object), y=np.zeros(2))

    def boom(*a, **k):
        raise AssertionError("unpickled!")
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    e = err(npz_spec(nn))
    assert "'x'" in e.message and "object" in e.message


def test_npz_mismatched_lengths(nn):
    np.savez(nn / "data" / "t.npz", x=np.zeros((5, 2)), y=np.zeros(4, np.int64))
    e = err(npz_spec(nn))
    assert "5" in e.message and "4" in e.message


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.array([1 + 2j, 3j]),
                                 np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]")])
def test_npz_non_numeric_dtype(nn, bad):
    np.savez(nn / "data" / "t.npz", x=bad, y=np.zeros(2, np.int64))
    e = err(npz_spec(nn))
    assert "'x'" in e.message and "not numeric" in e.message


def test_npz_nan_inf(nn):
    x = np.zeros((3, 2)); x[2, 1] = np.nan
    np.savez(nn / "data" / "t.npz", x=x, y=np.zeros(3, np.int64))
    e = err(npz_spec(nn))
    assert "NaN" in e.message and "[2, 1]" in e.message
    y = np.zeros(3); y[1] = np.inf
    np.savez(nn / "data" / "t.npz", x=np.zeros((3, 2)), y=y)
    e = err(npz_spec(nn))
    assert "'y'" in e.message and "infinite" in e.message


def test_npz_bad_labels(nn):
    np.savez(nn / "data" / "t.npz", x=np.zeros((3, 2)), y=np.array([0, -2, 1]))
    e = err(npz_spec(nn), label_kind="class")
    assert "index 1" in e.message and "negative" in e.message
    np.savez(nn / "data" / "t.npz", x=np.zeros((3, 2)), y=np.eye(3))
    e = err(npz_spec(nn), label_kind="class")
    assert "one label per sample" in e.message


def test_npz_corrupted_files(nn):
    p = nn / "data" / "t.npz"
    np.savez(p, x=np.zeros((50, 20)), y=np.zeros(50, np.int64))
    good = p.read_bytes()
    for raw in (b"", b"hello, world\n", good[: len(good) // 2], good[:100],
                good[:60] + bytes(100) + good[160:]):
        p.write_bytes(raw)
        e = err(npz_spec(nn))
        assert "t.npz" in e.message
    # a pickle file is refused, not loaded
    p.write_bytes(pickle.dumps({"x": 1}))
    assert "not an .npz" in err(npz_spec(nn)).message
    np.save(nn / "data" / "one.npy", np.zeros(3))
    os.replace(nn / "data" / "one.npy", p)
    assert ".npy" in err(npz_spec(nn)).message


def test_npz_missing_file(nn):
    e = err(npz_spec(nn, name="data/gone.npz"))
    assert "gone.npz" in e.message and "not found" in e.message


# ------------------------------------------------------------------------- npz images

@pytest.mark.parametrize("have,want", [
    ((5, 4, 3), (5, 4, 3)),          # [H, W, C] as declared
    ((5, 4), (5, 4, 1)),             # [H, W] for one channel
    ((5, 4, 1), (5, 4)),
    ((1, 5, 4), (5, 4, 1)),          # channels-first with one channel: the same values
    ((5, 4, 3), (60,)),              # flattened for a dense net
    ((60,), (5, 4, 3)),              # flat rows read row-major into images
    ((60,), (60, 1)),
])
def test_fits_input(have, want):
    assert fits_input(have, want)


@pytest.mark.parametrize("have,want", [
    ((3, 5, 4), (5, 4, 3)),          # channels-first
    ((4, 5), (5, 4)),                # height and width swapped
    ((5, 4, 3), (4, 5, 3)),
    ((6, 10), (4, 15)),
    ((5, 4, 3), (5, 4)),             # as many values differ
])
def test_fits_input_refuses(have, want):
    assert not fits_input(have, want)


def test_npz_images_nhwc_and_nhw(nn):
    x = np.random.default_rng(0).random((6, 5, 4, 3)).astype(np.float32)
    y = np.arange(6) % 2
    np.savez(nn / "data" / "t.npz", x=x, y=y)
    ds = load_data(npz_spec(nn), feature_shape=(5, 4, 3))
    assert ds.x.shape == (6, 5, 4, 3) and np.array_equal(ds.x, x) and ds.y.tolist() == y.tolist()
    flat = load_data(npz_spec(nn), feature_shape=(60,)).x             # a dense net on the pixels
    np.testing.assert_array_equal(flat, x.reshape(6, -1))
    grey = x[..., 0]
    np.savez(nn / "data" / "g.npz", x=grey, y=y)                      # (N, H, W) for a C=1 model
    ds = load_data(npz_spec(nn, name="data/g.npz"), feature_shape=(5, 4, 1))
    assert ds.x.shape == (6, 5, 4, 1) and np.array_equal(ds.x[..., 0], grey)
    assert ds.x[2, 3, 1, 0] == grey[2, 3, 1]
    np.savez(nn / "data" / "f.npz", x=x.reshape(6, 60), y=y)          # flat rows, row-major
    np.testing.assert_array_equal(load_data(npz_spec(nn, name="data/f.npz"), feature_shape=(5, 4, 3)).x, x)
    # channels-first with one channel holds the same values as channels-last
    np.savez(nn / "data" / "c1.npz", x=grey[:, None], y=y)
    np.testing.assert_array_equal(load_data(npz_spec(nn, name="data/c1.npz"), feature_shape=(5, 4, 1)).x,
                                  grey[..., None])


def test_npz_images_in_another_layout_name_both_shapes(nn):
    x = np.zeros((6, 3, 5, 4), np.float32)                            # channels-first
    np.savez(nn / "data" / "t.npz", x=x, y=np.zeros(6, np.int64))
    e = err(npz_spec(nn), feature_shape=(5, 4, 3))
    assert e.message.startswith(os.path.join("data", "t.npz") + ": ")
    assert "array 'x' has shape [6, 3, 5, 4]" in e.message and "the model's input has shape [5, 4, 3]" in e.message
    assert "in another layout" in e.message
    assert "x.transpose(0, 2, 3, 1)" in e.hint
    np.testing.assert_array_equal(x.transpose(0, 2, 3, 1).shape, (6, 5, 4, 3))
    e = err(npz_spec(nn), feature_shape=(4, 5, 3))
    assert "[4, 5, 3]" in e.message and "x.transpose(0, 3, 2, 1)" in e.hint
    e = err(npz_spec(nn), feature_shape=(6, 10))                      # not a permutation
    assert "in another layout" in e.message and "declare the input as f32[3, 5, 4]" in e.hint
    e = err(npz_spec(nn), feature_shape=(8, 8, 1))                    # a different size
    assert "array 'x' has shape [6, 3, 5, 4] (60 values per sample)" in e.message
    assert "the model's input has shape [8, 8, 1] (64 values per sample)" in e.message


# ------------------------------------------------------------------------- builtin / synthetic

def test_builtin_digits():
    ds = load_data(DataSpec("builtin", {"name": "digits"}, None), feature_shape=(64,))
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert ds.y.dtype == np.int64 and sorted(set(ds.y.tolist())) == list(range(10))
    assert ds.name == "builtin digits"
    assert load_data(DataSpec("builtin", {"name": "digits"}, None), feature_shape=(8, 8)).x.shape == (1797, 8, 8)
    with pytest.raises(DataError, match="64 values"):
        load_data(DataSpec("builtin", {"name": "digits"}, None), feature_shape=(10,))


def test_builtin_digits_as_images_are_row_major_channels_last():
    spec = DataSpec("builtin", {"name": "digits"}, None)
    flat = load_data(spec).x
    img = load_data(spec, feature_shape=(8, 8, 1)).x
    assert flat.shape == (1797, 64) and img.shape == (1797, 8, 8, 1) and img.flags.c_contiguous
    np.testing.assert_array_equal(img[:, :, :, 0], flat.reshape(-1, 8, 8))
    np.testing.assert_array_equal(load_data(spec, feature_shape=(8, 8)).x, img[..., 0])
    # the first sample is a 0 (the UCI set's first image): its first and fourth rows, known pixels
    assert (img[0, 0, :, 0] * 16).tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    assert (img[0, 3, :, 0] * 16).tolist() == [0, 4, 12, 0, 0, 8, 8, 0]
    assert img[0, 0, 3, 0] == np.float32(13 / 16)        # row 0, column 3
    y = load_data(spec, feature_shape=(8, 8, 1)).y
    # a 1 is a vertical stroke: its mean image's ink sits in a few columns, spread over every row
    one = img[y == 1, :, :, 0].mean(0)
    col, row = one.sum(axis=0), one.sum(axis=1)
    assert col.max() > 2 * row.max() and int(np.argmax(col)) in (3, 4)
    assert row.min() > 0.5 * row.max()
    # a 0 is a ring: dark in the middle, bright left and right of it
    zero = img[y == 0, :, :, 0].mean(0)
    assert zero[3:5, 3:5].max() < 0.15 and zero[3:5, 2].min() > 0.6 and zero[3:5, 5].min() > 0.5


def test_builtin_digits_refuses_another_layout():
    loc = SourceLoc("m.nn", 4, 10)
    for shape, phrase in [((4, 16), "in another layout"), ((2, 4, 8), "in another layout"),
                          ((8, 8, 2), "(128 values per sample)")]:
        with pytest.raises(DataError) as ei:
            load_data(DataSpec("builtin", {"name": "digits"}, loc), feature_shape=shape)
        e = ei.value
        assert e.loc == loc and e.message.startswith("builtin digits: the digits are 8x8 images"), shape
        assert f"the model's input has shape [{', '.join(map(str, shape))}]" in e.message and phrase in e.message


def test_builtin_unknown():
    loc = SourceLoc("m.nn", 2, 2)
    with pytest.raises(DataError) as ei:
        load_data(DataSpec("builtin", {"name": "digit"}, loc))
    assert ei.value.loc == loc and "did you mean 'digits'" in ei.value.hint


def test_no_sklearn_import():
    import subprocess
    import sys
    code = ("import sys; from nncompile.runtime import data; from nncompile.frontend.ast import DataSpec; "
            "data.load_data(DataSpec('builtin', {'name': 'digits'}, None)); "
            "assert 'sklearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def syn_cls(**kw):
    args = dict(samples=600, features=10, classes=3, seed=1)
    args.update(kw)
    return DataSpec("synthetic.classification", args, None)


def test_synthetic_classification():
    a, b = load_data(syn_cls()), load_data(syn_cls())
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, load_data(syn_cls(seed=2)).x)
    assert a.x.shape == (600, 10) and a.x.dtype == np.float32 and a.y.dtype == np.int64
    assert np.bincount(a.y).tolist() == [200, 200, 200]
    assert a.y[:30].tolist() != sorted(a.y[:30].tolist())  # shuffled


@pytest.mark.parametrize("classes,features", [(2, 10), (3, 10), (10, 10), (2, 2)])
def test_synthetic_classification_moderately_separable(classes, features):
    # The Bayes classifier (nearest true centroid) sets the ceiling: classes overlap
    # but are learnable.
    ds = load_data(syn_cls(samples=4000, classes=classes, features=features, seed=3))
    cent = np.stack([ds.x[ds.y == c].mean(0) for c in range(classes)])
    pred = np.argmin(((ds.x[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)
    acc = (pred == ds.y).mean()
    assert 0.82 <= acc <= 0.97, acc


def test_synthetic_regression():
    spec = DataSpec("synthetic.regression", dict(samples=500, features=4, targets=2, noise=0.05, seed=0), None)
    a, b = load_data(spec), load_data(spec)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert a.x.shape == (500, 4) and a.y.shape == (500, 2) and a.y.dtype == np.float32
    assert np.std(a.y) > 0.3
    with pytest.raises(DataError, match="not class labels"):
        load_data(spec, label_kind="class")


def syn_img(**kw):
    args = dict(samples=400, height=16, width=16, channels=1, classes=8, noise=0.0, seed=3)
    args.update(kw)
    return DataSpec("synthetic.images", args, SourceLoc("m.nn", 9, 10))


def _box(mask):
    """The foreground's bounding box, cut out of the mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def test_synthetic_images_basic_and_seeded():
    ds = load_data(syn_img(noise=0.1), feature_shape=(16, 16, 1))
    assert ds.x.shape == (400, 16, 16, 1) and ds.x.dtype == np.float32 and ds.x.flags.c_contiguous
    assert ds.y.dtype == np.int64 and np.bincount(ds.y).tolist() == [50] * 8       # balanced
    assert ds.name.startswith("synthetic.images(samples=400, height=16, width=16, channels=1")
    again = load_data(syn_img(noise=0.1), feature_shape=(16, 16, 1))
    assert np.array_equal(ds.x, again.x) and np.array_equal(ds.y, again.y)
    other = load_data(syn_img(noise=0.1, seed=4), feature_shape=(16, 16, 1))
    assert not np.array_equal(ds.x, other.x)
    assert load_data(syn_img(classes=3, samples=10)).y.tolist().count(0) in (3, 4)
    assert sorted(set(load_data(syn_img(classes=3)).y.tolist())) == [0, 1, 2]
    # the noise is N(0, noise^2) on the background
    bg = load_data(syn_img(noise=0.0)).x == 0
    assert np.std(ds.x[bg]) == pytest.approx(0.1, rel=0.05)
    f = load_data(syn_img(samples=12, classes=4), label_kind="float")
    assert f.y.dtype == np.float32 and f.y.shape == (12, 1)


def test_synthetic_images_shapes_per_class():
    ds = load_data(syn_img())
    masks = ds.x[..., 0] > 0
    fg = ds.x[..., 0][masks]
    assert fg.min() >= 0.5 and fg.max() <= 1.0          # the shape's brightness
    assert (ds.x[~masks[..., None]] == 0).all()          # noise=0: a black background
    for i, k in enumerate(ds.y):
        b = _box(masks[i])
        h, w = b.shape
        assert max(h, w) <= 8 and max(h, w) >= 4, (k, b.shape)   # size in [16/4, 16/2]
        if k == 0:      # square outline: full border, hollow
            assert h == w and b[0].all() and b[-1].all() and b[:, 0].all() and b[:, -1].all()
            assert not b[1:-1, 1:-1].any()
        elif k == 1:    # filled disk: no corners, a full middle
            assert h == w and not b[0, 0] and not b[-1, -1] and b[h // 2].all() and b[:, w // 2].all()
        elif k == 2:    # plus: a full row and a full column, no corners, symmetric about the diagonal
            assert b.all(1).any() and b.all(0).any() and not b[0, 0] and np.array_equal(b, b.T)
        elif k == 3:    # horizontal bar
            assert w > h and b.all()
        elif k == 4:    # vertical bar
            assert h > w and b.all()
        elif k == 5:    # diagonal line, top left to bottom right
            assert h == w and b[0, 0] and b[-1, -1] and not b[0, -1] and np.array_equal(b, b.T)
        elif k == 6:    # filled triangle, apex up: rows widen downwards to a full base
            counts = b.sum(1)
            assert (np.diff(counts) >= 0).all() and b[-1].all() and counts[0] < counts[-1]
        else:           # x: both diagonals
            assert h == w and b[0, 0] and b[0, -1] and np.array_equal(b, b[:, ::-1]) and np.array_equal(b, b.T)


def test_synthetic_images_positions_vary():
    ds = load_data(syn_img(samples=800, height=24, width=20))
    masks = ds.x[..., 0] > 0
    for k in range(8):
        m = masks[ds.y == k]
        rr, cc = np.indices(m.shape[1:])
        cy = (m * rr).sum((1, 2)) / m.sum((1, 2))
        cx = (m * cc).sum((1, 2)) / m.sum((1, 2))
        assert np.ptp(cy) > 10 and np.ptp(cx) > 8, k      # centres spread over the image
        # no pixel is ink in more than a third of a class's images: no fixed position to memorise
        assert m.mean(0).max() < 1 / 3, k


def test_synthetic_images_channels_are_one_shape_in_a_random_colour():
    ds = load_data(syn_img(channels=3, samples=64), feature_shape=(16, 16, 3))
    assert ds.x.shape == (64, 16, 16, 3)
    masks = ds.x > 0
    assert (masks == masks[..., :1]).all()                # the same shape in every channel
    colour = np.array([ds.x[i][masks[i, :, :, 0]][0] for i in range(64)])
    for i in range(64):   # one colour per image
        ink = ds.x[i][masks[i, :, :, 0]]                 # [pixels, 3]
        np.testing.assert_array_equal(ink, np.broadcast_to(colour[i], ink.shape))
    assert np.ptp(colour, axis=1).max() > 0.2 and np.ptp(colour[:, 0]) > 0.3


def test_synthetic_images_must_fit_the_input():
    assert load_data(syn_img(samples=4), feature_shape=(16, 16)).x.shape == (4, 16, 16)   # one channel
    for shape in [(16, 16, 3), (16, 8, 2)]:
        e = err(syn_img(samples=4), feature_shape=shape)
        assert "it makes 16x16x1 images" in e.message and f"[{', '.join(map(str, shape))}]" in e.message
    e = err(syn_img(height=8, width=12, samples=4), feature_shape=(12, 8, 1))
    assert "in another layout" in e.message


def test_unknown_source():
    with pytest.raises(DataError):
        load_data(DataSpec("parquet", {}, None))


# ------------------------------------------------------------------------- split / batches

def make_ds(n=100, classes=(0, 1, 2), weights=None, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(classes), size=n, p=weights)
    x = np.arange(n, dtype=np.float32).reshape(n, 1)  # x identifies the sample
    return Dataset(x, y.astype(np.int64), "mem")


def ids(ds):
    return ds.x[:, 0].astype(int).tolist()


@pytest.mark.parametrize("stratify", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_split_sizes_disjoint_cover(stratify, shuffle):
    ds = make_ds(101)
    tr, va = split(ds, 0.2, seed=5, stratify=stratify, shuffle=shuffle)
    assert len(va) == round(101 * 0.2) and len(tr) == 101 - len(va)
    assert set(ids(tr)).isdisjoint(ids(va)) and sorted(ids(tr) + ids(va)) == list(range(101))
    # labels travel with their samples
    assert all(ds.y[i] == y for i, y in zip(ids(va), va.y))
    tr2, va2 = split(ds, 0.2, seed=5, stratify=stratify, shuffle=shuffle)
    assert ids(tr) == ids(tr2) and ids(va) == ids(va2)
    assert tr.x.flags.c_contiguous and va.y.dtype == np.int64


def test_split_seed_and_no_shuffle():
    ds = make_ds(50)
    assert ids(split(ds, 0.3, seed=1)[1]) != ids(split(ds, 0.3, seed=2)[1])
    tr, va = split(ds, 0.3, seed=1, shuffle=False)
    assert ids(va) == list(range(35, 50)) and ids(tr) == list(range(35))


def test_split_stratified_proportions():
    ds = make_ds(1000, classes=(0, 1, 2, 3), weights=[0.6, 0.25, 0.1, 0.05], seed=1)
    tr, va = split(ds, 0.25, seed=0, stratify=True)
    for c in range(4):
        n_c = int((ds.y == c).sum())
        assert abs(int((va.y == c).sum()) - n_c * 0.25) <= 1


def test_split_stratified_rare_classes_on_both_sides():
    y = np.array([0] * 40 + [1] * 2 + [2] * 3 + [3], dtype=np.int64)
    ds = Dataset(np.arange(len(y), dtype=np.float32).reshape(-1, 1), y, "mem")
    for seed in range(5):
        tr, va = split(ds, 0.1, seed=seed, stratify=True)
        assert len(va) == round(len(y) * 0.1)
        for c in (0, 1, 2):
            assert c in tr.y and c in va.y
    with pytest.raises(DataError, match="stratified"):
        split(make_ds(100, classes=tuple(range(10))), 0.05, seed=0, stratify=True)


def test_split_stratified_one_hot_and_continuous():
    ds = make_ds(60)
    oh = Dataset(ds.x, one_hot(ds.y, 3), "mem")
    tr, va = split(oh, 0.5, seed=0, stratify=True)
    assert va.y.shape[1] == 3 and abs(va.y.sum(0) - one_hot(ds.y, 3).sum(0) / 2).max() <= 1
    cont = Dataset(ds.x, np.linspace(0, 1, 60, dtype=np.float32).reshape(-1, 1), "mem")
    with pytest.raises(DataError, match="class labels"):
        split(cont, 0.5, seed=0, stratify=True)


def test_split_size_limits():
    tr, va = split(make_ds(10), 0.01, seed=0)
    assert len(va) == 1 and len(tr) == 9
    loc = SourceLoc("m.nn", 3, 1)
    with pytest.raises(DataError) as ei:
        split(make_ds(1), 0.5, seed=0, loc=loc)
    assert ei.value.loc == loc
    with pytest.raises(DataError):
        split(make_ds(10), 0.99, seed=0)
    for bad in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(DataError):
            split(make_ds(10), bad, seed=0)


@pytest.mark.parametrize("n,bs", [(0, 4), (1, 4), (10, 3), (12, 4), (7, 100)])
def test_batches_cover_once(n, bs):
    for rng in (None, np.random.default_rng(0)):
        bl = list(batches(n, bs, rng))
        assert all(len(b) == bs for b in bl[:-1]) and all(0 < len(b) <= bs for b in bl)
        flat = np.concatenate(bl) if bl else np.array([], np.int64)
        assert sorted(flat.tolist()) == list(range(n))
        if rng is None:
            assert flat.tolist() == list(range(n))


def test_batches_permuted_and_seeded():
    a = np.concatenate(list(batches(100, 8, np.random.default_rng(3))))
    b = np.concatenate(list(batches(100, 8, np.random.default_rng(3))))
    assert a.tolist() == b.tolist() and a.tolist() != list(range(100)) and a.dtype == np.int64
    with pytest.raises(DataError):
        batches(10, 0, None)
