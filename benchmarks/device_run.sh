#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (see the device tool's README):
# install the carried wheels (lark), then run the GPU benchmarks, logging to $OUT.
#   run(command="bash benchmarks/device_run.sh", carry=[".whl"])
#   run(command="MLP=0 bash benchmarks/device_run.sh", carry=[".whl"])     # the convnet W6 only
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, triton, numpy; print('torch', torch.__version__, 'triton', triton.__version__, 'numpy', numpy.__version__)"
date -u
# Each part has its own timeout; all together they stay under the device tool's 600 s a command.
#   MLP=0   skip the graph check and the MLP step benchmark (W1, W2, W4): run the convnet W6 only
#   CONV=0  skip the convnet W6
if [ "${MLP:-1}" != 0 ]; then
  timeout 100 python3 benchmarks/gpu_graph_check.py 2>&1 | tee "$OUT/gpu_graph_check.log"
  # the step benchmark (the kernel benchmark's numbers are in docs/performance.md)
  timeout 210 python3 benchmarks/gpu_step.py --workloads W1,W2,W4 --tf32 --budget ${BUDGET:-130} 2>&1 | tee "$OUT/gpu_step.log"
fi
# the convnet W6 (benchmarks/w6.nn, batch 256): nncompile vs torch eager and torch.compile, each torch side
# in NCHW and channels_last
if [ "${CONV:-1}" != 0 ]; then
  timeout 270 python3 benchmarks/gpu_step.py --workloads W6 --tf32 --budget ${CONV_BUDGET:-190} 2>&1 | tee "$OUT/gpu_step_w6.log"
fi
if [ -n "${KERNELS:-}" ]; then
  timeout 200 python3 benchmarks/gpu_kernels.py --quick 2>&1 | tee "$OUT/gpu_kernels.log"
fi
