"""PyTorch modules exported to ONNX for the import tests (import it after
`pytest.importorskip("torch")`)."""
import io
import warnings
from pathlib import Path

import onnx
import torch

nn = torch.nn


def export(module, x, path=None, fold=True, opset=17):
    """`module` in eval mode, its batch norms' statistics moved away from 0 and 1,
    exported by the TorchScript exporter (opset 17 by default, symbolic batch). fold=False keeps
    batch norm as a BatchNormalization node. Written to `path` when given."""
    module.eval()
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=opset, do_constant_folding=fold,
                          training=torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE)
    if path is not None:
        Path(path).write_bytes(buf.getvalue())
    return onnx.load_from_string(buf.getvalue())
