"""Keras 3's callbacks for `Program.fit` (the same names, arguments and defaults):

    from nncompile.callbacks import Callback, EarlyStopping, ModelCheckpoint, CSVLogger
    prog.fit(x, y, callbacks=[EarlyStopping(monitor="val_auc", patience=5, restore_best_weights=True)])

Subclass `Callback` for your own hooks (on_train_begin/end, on_epoch_begin/end,
on_train_batch_begin/end = on_batch_begin/end, with Keras's logs dicts).
See docs/api.md, "Training from Python"."""
from .runtime.callbacks.keras import Callback
from .runtime.callbacks.keras_builtins import CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN
from .runtime.loop import History

__all__ = ["Callback", "CSVLogger", "EarlyStopping", "History", "ModelCheckpoint", "ReduceLROnPlateau",
           "TerminateOnNaN"]
