"""Signal handlers installed for the length of a `with` block (the CLI's stop
signals, the --workers launcher's forwarding)."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator, Sequence


@contextlib.contextmanager
def handled(names: Sequence[str], handler: Callable, *, only_default: bool = True) -> Iterator[dict]:
    """Install `handler` for the named signals that are at their default (with
    `only_default=False`: that are not ignored: a signal the process ignores,
    under nohup, stays ignored), in the main thread only; yields {signal: old
    handler} of those installed, and puts the old handlers back after."""
    old: dict = {}
    if threading.current_thread() is threading.main_thread():
        for name in names:
            s = getattr(signal, name, None)
            if s is None:
                continue
            h = signal.getsignal(s)
            if h == signal.SIG_DFL or (not only_default and h not in (signal.SIG_IGN, None)):
                old[s] = signal.signal(s, handler)
    try:
        yield old
    finally:
        for s, h in old.items():
            signal.signal(s, h)
