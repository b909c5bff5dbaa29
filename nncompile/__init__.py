"""nncompile: a compiler for neural-network training programs.

Public API::

    prog = nncompile.compile("model.nn")            # or .nn source text
    params = prog.init_params(seed=0)
    loss, grads = prog.loss_and_grads(params, x, y)
    y_hat = prog.predict(params, x)
    trainer = prog.trainer(seed=0); trainer.step(x, y); trainer.params
    history = prog.fit()                              # history.history["loss"], ...
"""
from .compiler import Program, compile
from .errors import CompileError, DataError, NNError, SourceLoc, TrainingError, WeightsError

__all__ = ["compile", "Program", "CompileError", "DataError", "NNError", "SourceLoc", "TrainingError",
           "WeightsError"]
__version__ = "0.1.0"
