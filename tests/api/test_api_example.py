"""examples/graph_api.py trains (a few epochs): a jitted Python training step on the digits."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_example(*args):
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "graph_api.py"), *args],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_graph_api_example_trains():
    out = run_example("--epochs", "3", "--show-ir")
    assert out.startswith("graph train_step {") and "examples/graph_api.py:" in out
    lines = re.findall(r"^Epoch: (\d+) Loss: (\S+) accuracy: (\S+) val_loss: (\S+) val_accuracy: (\S+)$", out, re.M)
    assert [int(l[0]) for l in lines] == [0, 1, 2]
    losses = [float(l[1]) for l in lines]
    assert losses[0] > losses[1] > losses[2]
    assert float(lines[-1][4]) > 0.9
