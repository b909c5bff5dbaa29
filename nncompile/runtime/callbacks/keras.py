"""Keras-shaped callbacks: the `Callback` a Keras user subclasses (Keras 3's hook
names and `logs` dicts, `self.model`, `self.params`) and the one internal
callback that runs a list of them inside the fit loop.

The loop's own protocol (base.py) passes the loop state; Keras's passes logs.
`KerasHooks` translates: it is placed where the loop puts the caller's
callbacks (after the ones that shape an epoch's logs, before the commit), so a
Keras callback sees the epoch's loss, metrics and val_* and what it adds to
the logs (ReduceLROnPlateau's learning_rate) goes into the history, as in Keras.
Batch logs are the running means of the epoch so far, as Keras 3 passes them."""
from __future__ import annotations

from typing import Sequence

from .base import Callback as LoopCallback


class Callback:
    """Keras 3's `keras.callbacks.Callback`: override the hooks you need.
    `self.model` is the Program being trained (`model.stop_training = True`
    stops after the current batch or epoch; `model.optimizer.learning_rate`
    reads and sets the rate; `model.get_weights()` / `set_weights()`);
    `self.params` is {"verbose", "epochs", "steps"}."""

    model = None
    params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    # evaluate() and predict() take no callbacks here; the hooks exist so that a
    # Keras callback that defines them is accepted as it is
    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


def _defines(cb, *hooks: str) -> bool:
    """Whether `cb` does something in any of `hooks` (duck-typed: any object with
    Keras's hook names is accepted, a real keras.callbacks.Callback too)."""
    for h in hooks:
        fn = getattr(type(cb), h, None)
        if fn is not None and fn is not getattr(Callback, h, None):
            return True
    return False


class KerasHooks(LoopCallback):
    """Runs Keras-shaped callbacks, in order, at the loop's hooks."""

    def __init__(self, callbacks: Sequence, program):
        self.callbacks = list(callbacks)
        self.program = program
        self._last_logs: dict = {}
        self._begin = [c for c in self.callbacks if _defines(c, "on_train_batch_begin", "on_batch_begin")]
        self._end = [c for c in self.callbacks if _defines(c, "on_train_batch_end", "on_batch_end")]

    def _check_stop(self) -> None:
        if getattr(self.program, "stop_training", False):
            self.loop.stop("a callback set model.stop_training")

    def on_train_begin(self, state) -> None:
        loop = self.loop
        self.program.stop_training = False
        self.program._trainer = loop.trainer
        for c in self.callbacks:
            c.set_model(self.program)
            c.set_params(dict(loop.history.params))
            c.on_train_begin({})
        self._check_stop()

    def on_epoch_begin(self, epoch: int) -> None:
        for c in self.callbacks:
            c.on_epoch_begin(epoch, {})
        self._check_stop()

    def on_batch_begin(self, batch: int) -> None:
        for c in self._begin:
            c.on_train_batch_begin(batch, {})
        self._check_stop()

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if not self._end:
            return
        running = self.loop.running_logs(batch)
        for c in self._end:
            c.on_train_batch_end(batch, running)
        self._check_stop()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.loop.failed and self.loop.rolled_back:
            return
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)
        self._last_logs = logs
        self._check_stop()

    def on_train_end(self) -> None:
        for c in self.callbacks:
            c.on_train_end(dict(self._last_logs))


def split_callbacks(callbacks) -> tuple[list, list]:
    """(the loop's own callbacks, Keras-shaped ones) of a fit(callbacks=[...]) list."""
    own, keras = [], []
    for c in callbacks or ():
        (own if isinstance(c, LoopCallback) else keras).append(c)
    for c in keras:
        if not callable(getattr(c, "on_epoch_end", None)) or not callable(getattr(c, "set_model", None)):
            raise TypeError(f"callbacks: {type(c).__name__} is not a callback (expected a subclass of "
                            "nncompile.callbacks.Callback)")
    return own, keras
