"""The Keras-shaped half of Program: fit(x, y, ...), evaluate, predict and the
model methods a Keras callback calls (stop_training, optimizer.learning_rate,
get_weights / set_weights / save_weights / load_weights).

The state a Program trains lives in its trainer (`program._trainer`): the
first fit makes it, a later fit continues it (weights, optimizer state, step
counter), as a second `model.fit` does in Keras; evaluate and predict read it
(before any fit: the initial weights of the file's seed)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .data import Dataset


class OptimizerView:
    """`model.optimizer` for Keras callbacks: `learning_rate`, read and set."""

    def __init__(self, program):
        self._program = program

    @property
    def learning_rate(self) -> float:
        return float(_trainer(self._program).lr)

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        _trainer(self._program).lr = float(value)

    lr = learning_rate

    @property
    def name(self) -> str:
        return self._program.ast.train.optimizer.name


def _trainer(program):
    if program._trainer is None:
        program._trainer = program.trainer()
    return program._trainer


def verbosity(verbose) -> Optional[int]:
    """Keras's verbose: "auto" (1), 0 silent, 1 a progress bar, 2 a line per epoch."""
    if verbose == "auto" or verbose is None:
        return None
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def fit(program, x, y, *, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
        class_weight, sample_weight, seed, data, **options):
    from ..frontend.parser import with_overrides
    from .loop import fit as loop_fit
    if x is not None:
        if data is not None:
            raise ValueError("fit: give the data as x, y or as data=(x, y), not both")
        if y is None and not isinstance(x, Dataset):
            raise ValueError("fit: y is missing (the targets for x)")
        data = x if isinstance(x, Dataset) else (x, y)
    if class_weight is not None and sample_weight is not None:
        raise ValueError("You cannot use `class_weight` and `sample_weight` at the same time.")
    if class_weight is not None or sample_weight is not None or (
            isinstance(validation_data, (tuple, list)) and len(validation_data) == 3):
        program.use_sample_weights()
    if program.ast.train is not None:     # the values are checked as if the file said them
        with_overrides(program.ast, epochs=epochs, seed=seed, batch_size=batch_size)
    history = loop_fit(program, epochs=epochs, seed=seed, data=data, validation_data=validation_data,
                       callbacks=list(callbacks or ()), verbose=verbosity(verbose), batch_size=batch_size,
                       shuffle=bool(shuffle), validation_split=validation_split, trainer=program._trainer,
                       class_weight=class_weight, sample_weight=sample_weight, **options)
    program._trainer = history.trainer
    return history


def evaluate(program, x, y, *, batch_size=None, sample_weight=None, return_dict=False):
    """Keras's: the loss alone when there are no metrics, else [loss, *metrics] in
    the order listed (return_dict: {name: value}); `sample_weight` weighs the
    loss and the weighted metrics."""
    from .evaluation import _pair, check_weights
    x, y = _pair(program, (x, y), "evaluate")
    if sample_weight is not None:
        sample_weight = check_weights(sample_weight, len(x), "sample_weight")
        program.use_sample_weights()
    logs = _trainer(program).evaluate(x, y, int(batch_size or 1024), sample_weight)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def weights(program) -> dict[str, np.ndarray]:
    """The inference tensors by name: the trained ones, else the initial ones."""
    if program._trainer is not None:
        return program._trainer.host("model_state")
    init = {**program.init_params(program.ast.train.seed if program.ast.train else 0), **program.init_state()}
    return {k: init[k] for k in program.graphs.predict.inputs if k in init}


def get_weights(program) -> list[np.ndarray]:
    """Keras's model.get_weights(): every inference tensor (parameters, then batch-norm
    statistics as the graph lists them), as NumPy copies."""
    w = weights(program)
    return [w[k] for k in program.graphs.predict.inputs if k in w]


def set_weights(program, values) -> None:
    trainer = _trainer(program)
    names = [k for k in program.graphs.predict.inputs if k in trainer.arrays]
    values = list(values)
    if len(values) != len(names):
        raise ValueError(f"set_weights: expected {len(names)} arrays ({', '.join(names)}), got {len(values)}")
    for k, v in zip(names, values):
        if np.shape(v) != tuple(np.shape(trainer.arrays[k])):
            raise ValueError(f"set_weights: {k} has shape {list(np.shape(trainer.arrays[k]))}, "
                             f"got {list(np.shape(v))}")
    fn = trainer._step_fn
    for k, v in zip(names, values):
        fn.copyto(trainer.arrays[k], fn.to_device(np.asarray(v, np.asarray(fn.to_host(trainer.arrays[k])).dtype)))


def save_weights(program, path) -> None:
    from .weights import save_weights as save
    save(str(path), program, weights(program))


def load_weights(program, path) -> None:
    from .weights import load_weights as load
    w = load(str(path), program)
    set_weights(program, [w[k] for k in program.graphs.predict.inputs if k in w])
