"""One worker of the data-parallel runs of tests/runtime/test_distributed.py
(started with torchrun's variables set): joins the group, trains each case of
a JSON spec on the same data through the Python API and, on rank 0, saves its
final arrays and history. A case may make one rank raise at a step."""
import json
import os
import sys

import numpy as np

import nncompile
from nncompile.runtime.callbacks import Callback
from nncompile.runtime.distributed import DistributedError, Group


class RaiseAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, batch, logs):
        if self.loop.trainer.step_count == self.step:
            raise RuntimeError(f"injected failure at step {self.step}")


def main(spec_path, out):
    spec = json.load(open(spec_path))
    d = np.load(spec["data"])
    try:
        group = Group()
    except DistributedError as e:    # the launcher's statuses: PORT_IN_USE makes the test try another port
        print(e, file=sys.stderr)
        return e.status
    try:
        for i, case in enumerate(spec["cases"]):
            p = nncompile.compile(case["source"], data_parallel=True, cpu_kernels=case.get("cpu_kernels"))
            p.group = group
            n = case.get("rows", len(d["x"]))
            fail = case.get("raise")
            cbs = [RaiseAt(fail["step"])] if fail and fail["rank"] == group.rank else []
            h = p.fit(data=(d["x"][:n], d["y"][:n]), validation_data=(d["xv"], d["yv"]), quiet=True, callbacks=cbs)
            if group.rank == 0:
                np.savez(os.path.join(out, f"{i}.npz"), **h.trainer.host("arrays"))
                with open(os.path.join(out, f"{i}.json"), "w") as f:
                    json.dump(h.history, f)
    except DistributedError as e:
        with open(os.path.join(out, f"rank{group.rank}.err"), "w") as f:
            f.write(str(e))
        return e.status
    finally:
        group.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
