"""`--on-nan`: what the loop does when a loss, a metric, a parameter or a
validation value is not finite (the search for its origin is in nonfinite.py)."""
from __future__ import annotations

import math

from ..nonfinite import NonFiniteReport, all_finite, first_bad, locate_evaluate, locate_train_step
from .base import Callback

ACTIONS = ("stop", "rollback")


class NonFinitePolicy(Callback):
    """Fails the epoch at the first non-finite batch value (or, after the
    epoch's last step, parameter or state value, or validation value), finds
    the IR node that produced it, and stops training: with `action` "stop" the
    trainer keeps the state before the step that produced it, with "rollback"
    the last good epoch's state. The report goes to `history.nonfinite` and,
    rendered, `history.report`. Runs before the callbacks that learn from an
    epoch (early stopping, the caller's), so that they see `loop.failed` and
    the failed epoch's completed logs."""

    def __init__(self, action: str = "stop"):
        if action not in ACTIONS:
            raise ValueError(f"on_nan must be 'stop' or 'rollback', not {action!r}")
        self.action = action
        self._bad = None   # (batch index, key, value, the batch's keys) of the failing step

    def on_batch_end(self, batch: int, logs: dict) -> None:
        key = first_bad(logs)
        if key is not None:
            self._bad = (batch, key, logs[key], list(logs))
            self.loop.fail(drop_batch=True)
        elif batch == len(self.loop.batches) - 1 and not all_finite(self.loop.trainer.host("arrays")):
            # the last update went wrong; this batch's values, taken before it, still count
            self._bad = (batch + 1, "parameters", float("nan"), list(logs))
            self.loop.fail()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        loop = self.loop
        if self._bad is not None:
            report, reason = self._locate_step(epoch, logs)
        else:
            bad = [k for k, v in logs.items() if not math.isfinite(v)]
            if not bad:
                return
            loop.fail()
            report = NonFiniteReport(bad[0], logs[bad[0]], epoch, graph="evaluate", action=self.action,
                                     note=locate_evaluate(loop.program, loop.trainer, loop.val))
            reason = f"non-finite {', '.join(bad)} at epoch {epoch}"
        if self.action == "rollback":
            loop.rollback()
            st = loop.state
            if st.batch:
                where = f"the checkpoint at epoch {st.epoch}, batch {st.batch}"
            elif st.epoch > 0:
                where = f"the state at the end of epoch {st.epoch - 1}"
            else:
                where = "the initial state"
            report.note += f"\nrolled back to {where}; epoch {epoch} is not in the history"
        report.note = report.note.strip()
        loop.history.nonfinite = report
        loop.stop(reason)

    def _locate_step(self, epoch: int, logs: dict) -> tuple[NonFiniteReport, str]:
        """The report for a failed step; completes the epoch's logs (the bad value,
        NaN for what was not computed) in place."""
        loop = self.loop
        i, key, value, keys = self._bad
        if key in keys:
            logs[key] = value
        row = {k: logs.get(k, float("nan")) for k in (loop.history.history or keys)}
        logs.clear()
        logs.update(row)
        report = NonFiniteReport(key, value, epoch, action=self.action)
        # the committed state is the epoch's start, or a checkpoint inside it the run resumed from
        first = loop.state.batch if loop.state.epoch == epoch else 0
        report.node, report.batch, report.step = locate_train_step(
            loop.trainer, loop.state.trainer_snapshot(), loop.batches[first:], i - first, loop.train.x, loop.train.y,
            loop.train.w)
        report.batch += first
        if report.node is None:
            report.note = ("the reference interpreter did not reproduce the non-finite value "
                           "(the backend's arithmetic differs from the reference here)")
        # locate_train_step left the trainer at the state before the step it found
        if self.action == "stop":
            report.note += f"\nthe weights are those before step {report.step}"
        return report, f"non-finite {key} at epoch {epoch}, batch {report.batch}"

    def on_train_end(self) -> None:
        h = self.loop.history
        if h.nonfinite is not None:
            h.report = h.nonfinite.render(self.loop.program)
