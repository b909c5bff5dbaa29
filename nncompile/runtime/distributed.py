"""Data-parallel training on torch.distributed: the worker's side.

A worker is one process of a run of WORLD_SIZE (torchrun's variables, or
those `launcher.launch` sets for `--workers N`). Every worker compiles the
program with `data_parallel=True`, loads the whole data set, draws the same
global batches (the shuffle is seeded) and trains on its rows of each: a
contiguous shard, `shard(n, rank, world)`. Inside the step every `shard_mean`
(the flat gradient, each batch-norm statistic; ir/collective.py) is one
all-reduce of the buffer weighted by the shard's share n_r / N, so every
worker applies the global batch's update; dropout masks are keyed by the
global row (the rng input's third element). The batch's loss and metrics,
and validation (sharded the same way), are reduced once more, weighted the
same. Only rank 0 writes the run folder and prints. docs/distributed.md.
"""
from __future__ import annotations

import datetime
import os
import re
import sys
from typing import Callable, Optional

import numpy as np

from ..errors import NNError
from ..ir import collective
from .trainer import Trainer

INSTALL_HINT = "pip install 'nncompile[distributed]'"
# how long a collective (and the rendezvous) waits for the other workers: a
# worker that hangs ends the run after this long; one that dies, at once
DEFAULT_TIMEOUT_S = 300.0
PEER_LOST = 4        # a worker's exit status when another worker stopped first
PORT_IN_USE = 5      # rank 0's when MASTER_PORT is taken (the launcher tries another)


class DistributedError(NNError):
    """A data-parallel run cannot start or continue; `status` is the worker's exit status."""

    def __init__(self, message: str, hint: Optional[str] = None, status: int = 2):
        super().__init__(message, hint=hint)
        self.status = status


def need_torch():
    """torch and torch.distributed, or a DistributedError saying how to install them."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        raise DistributedError("data-parallel training (--workers, torchrun) needs torch.distributed, and "
                               "torch is not installed", hint=INSTALL_HINT) from None
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed", hint=INSTALL_HINT)
    return torch, dist


def in_worker() -> bool:
    """Whether this process is a worker of a data-parallel run (RANK and WORLD_SIZE set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [lo, hi) of a global batch of n rows that worker `rank` trains on:
    contiguous, sizes differing by at most one (the first n % world one longer)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def timeout_s() -> float:
    v = os.environ.get("NNCOMPILE_DIST_TIMEOUT", "")
    try:
        return float(v) if v else DEFAULT_TIMEOUT_S
    except ValueError:
        raise DistributedError(f"NNCOMPILE_DIST_TIMEOUT={v!r} is not a number of seconds") from None


def threads_per_worker(local_world: int) -> int:
    """Intra-op threads for each of `local_world` workers on this machine: the
    cores this process may use, divided among them (at least 1), so that they do
    not oversubscribe the cores; OMP_NUM_THREADS, when set, wins."""
    v = os.environ.get("OMP_NUM_THREADS", "")
    if v.isdigit() and int(v) > 0:
        return int(v)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, local_world))


def _first_line(e: Exception) -> str:
    """torch's message without gloo's source location and advice."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0])
    return text.split(". ")[0].rstrip(".")


class Group:
    """This worker's process group: rank, world size, and the weighted all-reduce
    that `shard_mean` runs (installed into ir.collective while the group is open)."""

    def __init__(self, backend: str = "numpy"):
        torch, dist = need_torch()
        self.torch, self.dist = torch, dist
        env = os.environ
        try:
            self.rank, self.world = int(env["RANK"]), int(env["WORLD_SIZE"])
            self.local_world = int(env.get("LOCAL_WORLD_SIZE", self.world))
        except ValueError:
            raise DistributedError(f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}: "
                                   "expected integers (torchrun sets them)") from None
        if not 0 <= self.rank < self.world:
            raise DistributedError(f"RANK={self.rank} is outside 0..WORLD_SIZE-1 ({self.world - 1})")
        for k in ("MASTER_ADDR", "MASTER_PORT"):
            if k not in env:
                raise DistributedError(f"{k} is not set: a worker needs the address of rank 0",
                                       hint="launch with `nncompile run model.nn --workers N` or torchrun")
        # NCCL for the GPU backend (its tensors stay on the device), gloo on the CPU
        self.kind = "nccl" if backend == "triton" and torch.cuda.is_available() else "gloo"
        self.device = torch.device("cuda", int(env.get("LOCAL_RANK", 0))) if self.kind == "nccl" else None
        if self.device is not None:
            torch.cuda.set_device(self.device)
        torch.set_num_threads(threads_per_worker(self.local_world))
        self.weight = 1.0
        where = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
        try:
            dist.init_process_group(self.kind, init_method="env://", rank=self.rank, world_size=self.world,
                                    timeout=datetime.timedelta(seconds=timeout_s()))
        except Exception as e:   # torch raises RuntimeError, DistStoreError, ...
            msg = _first_line(e)
            if "address already in use" in str(e).lower() or "errno: 98" in str(e).lower():
                raise DistributedError(f"worker rank {self.rank}: MASTER_PORT {env['MASTER_PORT']} is in use on "
                                       f"{env['MASTER_ADDR']}", hint="choose another port (MASTER_PORT, or "
                                       "torchrun --master-port); --workers N picks a free one",
                                       status=PORT_IN_USE) from None
            raise DistributedError(f"worker rank {self.rank}: could not join the other {self.world - 1} "
                                   f"worker(s) at {where}: {msg}", status=PEER_LOST) from None
        collective.install(self.reduce)

    def close(self) -> None:
        collective.install(None)
        if self.dist.is_initialized():
            self.dist.destroy_process_group()

    def _all_reduce(self, t) -> None:
        try:
            self.dist.all_reduce(t)
        except Exception as e:
            raise DistributedError(f"worker rank {self.rank}: another worker stopped or stopped answering "
                                   f"({_first_line(e)})", status=PEER_LOST) from None

    def reduce(self, buf) -> None:
        """shard_mean's reduction: buf <- sum over workers of weight * buf, in place
        (an empty shard, weight 0, contributes zeros, not its NaN means)."""
        torch = self.torch
        t = torch.from_numpy(buf) if isinstance(buf, np.ndarray) else buf
        dev = t.to(self.device) if self.device is not None and t.device != self.device else t
        if self.weight == 0:
            dev.zero_()
        elif self.weight != 1.0:
            dev.mul_(self.weight)
        self._all_reduce(dev)
        if dev is not t:
            t.copy_(dev)

    def mean(self, values: dict, weight: float) -> dict:
        """The weighted mean over the workers of a batch's loss and metrics (scalars,
        and the vectors of a metric's statistics: AUC's histograms), in float64."""
        parts = [np.ravel(np.asarray(v, np.float64)) for v in values.values()]
        vec = np.concatenate(parts) * weight if parts else np.zeros(0)
        if weight == 0:     # an empty shard: its values may be NaN, and count for nothing
            vec[:] = 0.0
        t = self.torch.from_numpy(vec)
        dev = t.to(self.device) if self.device is not None else t
        self._all_reduce(dev)
        out = dev.cpu().numpy() if dev is not t else vec
        res, at = {}, 0
        for (k, v), part in zip(values.items(), parts):
            chunk = out[at:at + part.size]
            at += part.size
            res[k] = float(chunk[0]) if np.ndim(v) == 0 else chunk.reshape(np.shape(v)).copy()
        return res


class WorkerTrainer(Trainer):
    """A Trainer whose steps and evaluations see the global batch and run on this
    worker's shard of it (the fit loop is unchanged: it hands over global batches)."""

    def __init__(self, program, group: Group, **kw):
        super().__init__(program, **kw)
        self.group = group

    def train_batch(self, x, y, w=None) -> dict[str, float]:
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            from .evaluation import check_batch
            x, y = check_batch(self.program, x, y, "Trainer.step")
        n = len(x)
        lo, hi = shard(n, self.group.rank, self.group.world)
        weight = (hi - lo) / n
        self.group.weight = weight
        self._rng[2] = lo        # dropout counts from the shard's first global row
        super().train_batch(x[lo:hi], y[lo:hi], None if w is None else w[lo:hi])
        # the loop sums last_stats over the epoch: the global batch's means, then finished
        self.last_stats = self.group.mean(self.last_stats, weight)
        self.last = self.program.metric_logs(self.last_stats) if self._derived else self.last_stats
        return self.last

    def evaluate_means(self, x, y, batch_size: int = 1024, sample_weight=None) -> dict:
        n = len(x)
        lo, hi = shard(n, self.group.rank, self.group.world)
        if hi > lo or n == 0:
            local = super().evaluate_means(x[lo:hi], y[lo:hi], batch_size,
                                           None if sample_weight is None else sample_weight[lo:hi])
        else:      # fewer rows than workers: this one has none, and counts for nothing
            local = {k: (0.0 if node.shape == () else np.zeros(tuple(node.shape)))
                     for k, node in self.program.graphs.evaluate.outputs.items()}
        return self.group.mean(local, (hi - lo) / n if n else 0.0)


def run_worker(program, fit_kwargs: dict, report: Callable[[object], int]) -> int:
    """Train as one worker of the run the environment describes; rank 0 records,
    prints and returns `report(history)`, the others train silently. A worker
    that loses the others exits with PEER_LOST (the launcher names the one that
    failed first)."""
    from .loop import fit
    try:
        group = Group(program.backend)
    except DistributedError as e:
        print(str(e), file=sys.stderr)
        return e.status
    program.group = group
    try:
        if group.rank:
            fit_kwargs = {**fit_kwargs, "record": None, "quiet": True, "verbose": 0}
        hist = fit(program, **fit_kwargs)
    except DistributedError as e:
        print(str(e), file=sys.stderr)
        return e.status
    finally:
        group.close()
    if group.rank == 0:
        return report(hist)
    return 1 if hist.stop_reason and hist.stop_reason != "early stopping" else 0
