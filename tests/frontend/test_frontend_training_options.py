"""The train settings schedule / init_from / augment and the layer options frozen / lr_mult
in the checked AST (defaults when absent, did-you-mean for the new keys)."""
import pytest

from nncompile.errors import CompileError
from nncompile.frontend import parse_source

SRC = """model m {
  input x: f32[8, 8]
  flatten
  dense h1(16, relu, frozen=true)
  batchnorm bn1(frozen=true)
  dense h2(8, relu, lr_mult=0.1)
  dense out(3, softmax)
}
train {
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [accuracy]
  epochs = 20
  validation = split(0.2)
  schedule = reduce_on_plateau(monitor=val_loss, factor=0.5, patience=2)
  init_from = weights("w.npz", layers=[h1, "bn1"])
  augment = [noise(0.05), flip(horizontal), crop(padding=2)]
}
"""


def test_everything_together(tmp_path):
    p = parse_source(SRC, "model.nn", base_dir=str(tmp_path))
    L = {l.name: l for l in p.model.layers}
    assert (L["h1"].frozen, L["h1"].lr_mult) == (True, 1.0)
    assert L["bn1"].frozen and not L["h2"].frozen and L["h2"].lr_mult == 0.1
    assert "frozen" not in L["h1"].args and "lr_mult" not in L["h2"].args
    t = p.train
    assert t.schedule.kind == "reduce_on_plateau" and t.schedule.params["factor"] == 0.5
    assert t.init_from.path == str(tmp_path / "w.npz") and t.init_from.layers == ("h1", "bn1")
    assert [a.kind for a in t.augment] == ["noise", "flip", "crop"]


def test_defaults_when_absent():
    p = parse_source("model m {\n  input x: f32[2]\n  dense o(1)\n}\ntrain {\n  loss = mse\n  optimizer = sgd\n}\n")
    assert p.train.schedule is None and p.train.init_from is None and p.train.augment == ()
    assert p.model.layers[0].frozen is False and p.model.layers[0].lr_mult == 1.0


@pytest.mark.parametrize("key,suggest", [("schedul", "schedule"), ("init_form", "init_from"),
                                         ("augmnet", "augment")])
def test_new_keys_in_did_you_mean(key, suggest):
    src = f"model m {{\n  input x: f32[2]\n  dense o(1)\n}}\ntrain {{\n  loss = mse\n  optimizer = sgd\n  {key} = 1\n}}\n"
    with pytest.raises(CompileError) as e:
        parse_source(src, "model.nn")
    assert f"did you mean '{suggest}'" in e.value.hint
