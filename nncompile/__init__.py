"""nncompile: a compiler for neural-network training programs.

Public API::

    prog = nncompile.compile("model.nn")            # or .nn source text
    params = prog.init_params(seed=0)
    loss, grads = prog.loss_and_grads(params, x, y)
    y_hat = prog.predict(params, x)
    trainer = prog.trainer(seed=0); trainer.step(x, y); trainer.params
    history = prog.fit()                              # history.history["loss"], ...
    history = prog.fit(x, y, batch_size=32, epochs=10, validation_split=0.2,
                       callbacks=[nncompile.callbacks.EarlyStopping(patience=3)])   # as Keras
    prog.evaluate(x, y); prog.predict(x)              # on the trained state

and the graph API (docs/api.md): ``nc.jit(fn, nc.f32[nc.B, 784], ...)``,
``nc.value_and_grad``, ``nc.relu``, ``nc.optim.adam``, ``nc.parse_ir``,
``nc.compile_graph``.
"""
from . import callbacks
from .compiler import Program, compile
from .errors import CompileError, DataError, NNError, SourceLoc, TrainingError, WeightsError
from .api import *  # noqa: F401,F403  (the graph API: nc.jit, nc.f32, nc.B, nc.relu, ...)
from .api import __all__ as _api
from . import onnx  # noqa: E402  (nc.onnx.load; the onnx package itself is imported when used)

__all__ = ["compile", "Program", "callbacks", "CompileError", "DataError", "NNError", "SourceLoc", "TrainingError",
           "WeightsError", "onnx", *_api]
__version__ = "0.1.0"
