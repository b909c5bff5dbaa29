"""Networks built and exported by PyTorch (torch.onnx.export), imported with
nc.onnx.load: predictions against torch's, and fine-tuning the imported
function with the graph API's gradients."""
import numpy as np
import pytest

from extras import ONNX_REASON, TORCH_REASON

onnx = pytest.importorskip("onnx", reason=ONNX_REASON)
ort = pytest.importorskip("onnxruntime", reason=ONNX_REASON)
torch = pytest.importorskip("torch", reason=TORCH_REASON)
nn = torch.nn

import nncompile as nc  # noqa: E402
from torch_export import export  # noqa: E402


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(10, 16), nn.Linear(16, 8), nn.Linear(8, 3)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        h = torch.tanh(self.fc2(self.drop(torch.relu(self.fc1(x)))))
        return torch.log_softmax(self.out(h), dim=-1)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 6, 3, stride=2, groups=2)
        self.pool = nn.AvgPool2d(2, ceil_mode=True)
        self.fc = nn.Linear(6 * 2 * 2, 4)

    def forward(self, x):
        h = nn.functional.leaky_relu(self.bn(self.c1(x)), 0.1)
        h = torch.sigmoid(self.pool(self.c2(nn.functional.max_pool2d(h, 2, 1))))
        return torch.softmax(self.fc(torch.flatten(h, 1)), dim=1)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.b(torch.relu(self.bn(self.a(h)))))
        g = torch.cat([h.mean(dim=(2, 3)), torch.amax(h, dim=(2, 3))], dim=1)
        return self.fc(g)


CASES = [(MLP, (10,)), (ConvNet, (3, 8, 8)), (ResNet, (1, 6, 6))]


@pytest.mark.parametrize("net,shape", CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
def test_torch_models_predict_as_torch(net, shape, fold):
    torch.manual_seed(0)
    module = net()
    x = torch.randn(5, *shape)
    model = export(module, x, fold=fold)
    f = nc.onnx.load(model)
    with torch.no_grad():
        for n in (5, 2):     # the batch axis is symbolic
            np.testing.assert_allclose(f(x[:n].numpy()), module(x[:n]).numpy(), rtol=1e-4, atol=1e-5)
    if not fold:      # batch norm kept as a node
        assert "BatchNormalization" in {nd.op_type for nd in model.graph.node} or net is MLP


def test_the_imported_function_fine_tunes_with_the_graph_api():
    """One SGD step on the imported MLP's weights through nc.value_and_grad equals
    torch's step on the module."""
    torch.manual_seed(0)
    module = MLP()
    x, y = torch.randn(8, 10), torch.randint(0, 3, (8,))
    f = nc.onnx.load(export(module, x))

    def loss(params, x, y):
        return nc.mean(nc.sparse_categorical_crossentropy(y, nc.exp(f.fn(params, x))))

    step = nc.jit(nc.value_and_grad(loss), f.params, nc.f32[nc.B, 10], nc.i64[nc.B])
    value, grads = step(f.params, x.numpy(), y.numpy())
    module.eval()
    ref = nn.functional.nll_loss(module(x), y)
    ref.backward()
    assert abs(float(value) - ref.item()) < 1e-5
    names = {n: p for n, p in module.named_parameters()}
    for k, g in grads.items():      # torch's initializer names are its parameter names (or Gemm weights)
        if k in names:
            np.testing.assert_allclose(g, names[k].grad.numpy(), rtol=1e-4, atol=1e-6)
    assert any(k in names for k in grads)


def test_the_traced_graph_compiles_with_compile_graph():
    torch.manual_seed(0)
    module = ResNet()
    x = torch.randn(4, 1, 6, 6)
    f = nc.onnx.load(export(module, x, fold=False))
    g = f.trace()
    assert any(n.op == "conv2d" for n in g.nodes)
    run = nc.compile_graph(g)
    out = run(**{f"params.{k}": v for k, v in f.params.items()}, x=x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(out, module(x).numpy(), rtol=1e-4, atol=1e-5)
    assert "opset 17" in repr(f) and f.input_names == ["x"]


def test_fine_tuned_imported_function_exports_again(tmp_path):
    """load -> one Adam step with nc.optim -> m.export(params): onnxruntime on the new
    file gives the function's predictions with the new weights."""
    torch.manual_seed(0)
    f = nc.onnx.load(export(ResNet(), torch.randn(2, 1, 6, 6), fold=False))
    x = np.random.default_rng(0).normal(size=(6, 1, 6, 6)).astype(np.float32)
    y = np.arange(6) % 5
    opt = nc.optim.adam(lr=0.05)

    def train_step(params, state, x, y):
        loss = lambda p: nc.mean(nc.sparse_categorical_crossentropy(y, f.fn(p, x), from_logits=True))  # noqa: E731
        value, grads = nc.value_and_grad(loss)(params)
        params, state = opt.update(params, grads, state)
        return params, state

    step = nc.jit(train_step, f.params, opt.init(f.params), *f.specs, nc.i64[nc.B])
    params, _ = step(f.params, opt.init(f.params), x, y)
    assert not np.allclose(params["fc.weight"], f.params["fc.weight"])
    f.export(params, tmp_path / "tuned.onnx")
    model = onnx.load(str(tmp_path / "tuned.onnx"))
    assert model.graph.input[0].name == "x" and model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, f.jit()(params, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [17, 20])
def test_gelu_both_forms(opset):
    """PyTorch writes GELU as a Gelu node from opset 20; before it, the exact one as
    x * (erf(x / sqrt 2) + 1) * 0.5 (read as one Gelu) and the tanh one spelled out."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3),
                           nn.GELU(approximate="tanh" if opset >= 20 else "none"))
    x = torch.randn(5, 4) * 2
    model = export(module, x, opset=opset)
    assert [nd.op_type for nd in model.graph.node].count("Gelu" if opset >= 20 else "Erf") == 2
    with torch.no_grad():
        np.testing.assert_allclose(nc.onnx.load(model)(x.numpy()), module(x).numpy(), rtol=1e-4, atol=1e-5)
    from nncompile.onnx.layers import check_program, to_program
    text, w = to_program(model, "gelu.onnx")
    assert ("gelu(approximate=true)" if opset >= 20 else "(6, gelu)") in text
    check_program(text, w, model)
