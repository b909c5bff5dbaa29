"""Keras 3's everyday callbacks, with its argument names, defaults and rules:
EarlyStopping, ModelCheckpoint, CSVLogger, ReduceLROnPlateau, TerminateOnNaN.
They are Keras-shaped (keras.py): a user adds them to fit(callbacks=[...]).
The .nn file's own early_stopping and reduce_on_plateau settings are the loop's
callbacks (early_stopping.py, scheduler.py); these are their Python twins."""
from __future__ import annotations

import csv
import math
import os
import sys
import warnings

from .early_stopping import improves
from .keras import Callback


def _direction(monitor: str, mode: str, who: str) -> str:
    """'min' or 'max'. Keras 3's 'auto': the monitored metric's own direction
    (up for accuracy, precision, recall, AUC, F1; down for loss and errors)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', not {mode!r}")
    if mode != "auto":
        return mode
    from ...frontend.metrics import direction
    return direction(monitor)


def _monitored(logs, monitor: str, who: str):
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(f"{who} is conditioned on metric `{monitor}` which is not available. Available metrics "
                      f"are: {','.join(sorted(logs or {}))}", stacklevel=3)
    return value


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience`
    epochs (Keras 3: `wait` counts every epoch since the best; an epoch improves
    only over the best so far, and resets the count only if it also beats
    `baseline`; no stop at epoch 0; epochs before `start_from_epoch` are not
    looked at). `restore_best_weights`: end with the best epoch's weights."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = mode
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self._dir = None
        self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, 0

    def _better(self, value, reference) -> bool:
        return reference is None or improves(value, reference, self._dir, self.min_delta)

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, 0

    def on_epoch_end(self, epoch, logs=None):
        if self._dir is None:
            self._dir = _direction(self.monitor, self.mode, "EarlyStopping")
        current = _monitored(logs, self.monitor, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the weights (an .npz archive that `init_from = weights(...)`, `nncompile
    predict` and `load_weights` read) after every epoch, or every `save_freq`
    batches. `filepath` is formatted with `epoch` (1-based, as Keras) and the
    epoch's logs: "ckpt-{epoch:02d}-{val_loss:.2f}.npz". `save_best_only`: only
    when `monitor` improves on the best so far (and on `initial_value_threshold`).
    Keras's .keras/.h5 files are not written: the whole model is the .nn file,
    so `save_weights_only` makes no difference."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: unrecognized save_freq {save_freq!r}; expected 'epoch' or a "
                             "positive integer (batches)")
        self.save_freq = save_freq
        self.mode = mode
        self.best = initial_value_threshold
        try:
            self._dir = _direction(monitor, mode, "ModelCheckpoint")
        except ValueError:
            if mode != "auto":
                raise
            self._dir = "max" if "acc" in monitor else "min"   # a name of the caller's own logs
        self._batches = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._epoch, logs, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def _save(self, epoch, logs, batch=None):
        logs = dict(logs or {})
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "Can save best model only with")
            if current is None:
                return
            if not improves(current, self.best, self._dir, 0.0):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best}")
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {current}, saving model "
                      f"to {self.filepath}")
            self.best = current
        path = self.filepath.format(epoch=epoch + 1, batch=batch, **logs)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.model.save_weights(path)
        if self.verbose > 0 and not self.save_best_only:
            print(f"Epoch {epoch + 1}: saving model to {path}")


class CSVLogger(Callback):
    """One row per epoch: `epoch` and the epoch's logs in sorted order (Keras's
    columns), to `filename`; `append` continues an existing file."""

    def __init__(self, filename, separator=",", append=False):
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._header = not exists
        self._file = open(self.filename, "a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep,
                                          extrasaction="ignore", restval="NA")
            if self._header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None


class ReduceLROnPlateau(Callback):
    """After `patience` epochs in which `monitor` did not beat its best by more than
    `min_delta`, `lr = max(lr * factor, min_lr)`; then `cooldown` epochs are not
    counted. Adds the epoch's `learning_rate` to the logs (and so to the history).
    'auto' mode is Keras's: 'max' when the monitor's name contains "acc", else 'min'.
    The .nn file's `schedule` (when one is set) sets the rate at each epoch's start
    and so overrides this callback's changes."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {', '.join(sorted(kwargs))}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), verbose
        self.mode = mode if mode in ("auto", "min", "max") else "auto"
        self.min_delta, self.cooldown, self.min_lr = float(min_delta), int(cooldown), float(min_lr)
        self._reset()

    def _reset(self):
        self._dir = "min" if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor) else "max"
        self.best = math.inf if self._dir == "min" else -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        current = _monitored(logs, self.monitor, "Learning rate reduction")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if improves(current, self.best, self._dir, self.min_delta):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > float(_f32(self.min_lr)):
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


def _f32(v: float) -> float:
    import numpy as np
    return float(np.float32(v))


class TerminateOnNaN(Callback):
    """Stop as soon as a batch's loss is NaN or infinite. (The fit loop's own
    non-finite policy stops there too and says where the value came from.)"""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training", file=sys.stderr)
            self.model.stop_training = True


__all__ = ["EarlyStopping", "ModelCheckpoint", "CSVLogger", "ReduceLROnPlateau", "TerminateOnNaN"]
