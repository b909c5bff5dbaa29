"""Callbacks of the fit loop: the hooks (base.py) and the built-in ones.
See docs/runtime.md, "Callbacks", for the hooks, the order they run in and
how to write one."""
from .base import Callback, CallbackList
from .checkpointer import Checkpointer
from .early_stopping import EarlyStopping, improves
from .logger import ProgressLogger
from .nan_policy import NonFinitePolicy
from .recorder import RunRecorder
from .scheduler import LearningRateScheduler

__all__ = ["Callback", "CallbackList", "Checkpointer", "EarlyStopping", "LearningRateScheduler",
           "NonFinitePolicy", "ProgressLogger", "RunRecorder", "improves"]
