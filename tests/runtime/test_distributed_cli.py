"""`nncompile run model.nn --workers 2`: the launcher, its run folder, resume
(2 -> 2 and 2 -> 1 workers), Ctrl-C, a killed worker, a port in use and
`Program.fit(workers=2)`, as real processes with bounded timeouts. The oracle
is the one-process run."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch.distributed: pip install 'nncompile[distributed]'")

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 180

SRC = """model m {{
  input x: f32[6]
  dense h(16, relu, l2=1e-3)
  batchnorm bn
  dropout d(0.2)
  dense o(3, softmax)
}}
train {{
  data = npz("{data}")
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [accuracy]
  epochs = {epochs}
  batch_size = 11
  validation = split(0.2, seed=1)
  seed = 3
}}
"""


def model(tmp: Path, epochs: int = 3) -> Path:
    data = tmp / "d.npz"
    if not data.exists():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(80, 6)).astype(np.float32)
        np.savez(data, x=x, y=x[:, :3].argmax(1))
    path = tmp / f"m{epochs}.nn"
    path.write_text(SRC.format(data=data, epochs=epochs))
    return path


def env() -> dict:
    e = dict(os.environ, NNCOMPILE_DIST_TIMEOUT="60")
    e.pop("MASTER_PORT", None)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    return e


def nncompile(*args, cwd, extra_env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nncompile", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, env={**env(), **(extra_env or {})})


def start(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nncompile", *map(str, args)], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_same_run(a: Path, b: Path, weights_atol: float = 2e-6, history_rtol: float = 1e-5) -> None:
    wa, wb = np.load(a / "weights_final.npz"), np.load(b / "weights_final.npz")
    for k in wa.files:
        if k != "__meta__":
            np.testing.assert_allclose(wb[k], wa[k], rtol=1e-4, atol=weights_atol, err_msg=k)
    ha = np.atleast_1d(np.genfromtxt(a / "history.csv", delimiter=",", names=True))
    hb = np.atleast_1d(np.genfromtxt(b / "history.csv", delimiter=",", names=True))
    assert ha.dtype.names == hb.dtype.names and len(ha) == len(hb)
    for k in ha.dtype.names:
        np.testing.assert_allclose(hb[k], ha[k], rtol=history_rtol, atol=1e-6, err_msg=k)


def children(pid: int) -> dict[int, int]:
    """The launcher's worker processes: pid -> RANK (from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            environ = (d / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        ranks = [int(v[5:]) for v in environ if v.startswith(b"RANK=")]
        if ranks:
            out[int(d.name)] = ranks[0]
    return out


def wait_for(cond, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}): {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def test_resume_two_workers_on_two(tmp_path):
    """A finished 2-epoch run of 2 workers, continued to 4 epochs with 2 workers,
    ends as an uninterrupted 4-epoch run of 1 worker (2 -> 1 workers: the Ctrl-C
    test below)."""
    m2, m4 = model(tmp_path, 2), model(tmp_path, 4)
    assert nncompile("run", m4, "--out", "ref", "--quiet", cwd=tmp_path).returncode == 0
    r = nncompile("run", m2, "--out", "a", "--workers", "2", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = nncompile("run", m4, "--resume", "a", "--workers", "2", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_run(tmp_path / "ref", tmp_path / "a")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_on_the_launcher_checkpoints_and_stops_every_worker(tmp_path, signum):
    """... and (Ctrl-C) the checkpoint, inside an epoch (every 5 steps), resumed
    on 1 worker, ends as an uninterrupted 1-worker run."""
    m = model(tmp_path, 5000)
    p = start("run", m, "--out", "run", "--workers", "2", "--verbose", "--checkpoint-every", "5steps",
              cwd=tmp_path)
    wait_for(lambda: (tmp_path / "run" / "history.csv").exists()
             and len((tmp_path / "run" / "history.csv").read_text().splitlines()) > 2, 120, p)
    workers = children(p.pid)
    assert sorted(workers.values()) == [0, 1]
    t0 = time.monotonic()
    p.send_signal(signum)
    _, err = p.communicate(timeout=60)
    assert time.monotonic() - t0 < 30
    assert p.returncode == 128 + signum, err
    assert "checkpoint" in err and "saved to" in err and "--workers 2 --verbose --checkpoint-every 5steps " \
        "--resume run" in err, err
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    if signum != signal.SIGINT:
        return
    from nncompile.runtime.checkpoint import load_checkpoint
    epochs = load_checkpoint(str(tmp_path / "run" / "checkpoint.npz")).epoch + 2
    r = nncompile("run", m, "--resume", "run", "--epochs", epochs, "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert nncompile("run", m, "--out", "ref", "--epochs", epochs, "--quiet", cwd=tmp_path).returncode == 0
    assert_same_run(tmp_path / "ref", tmp_path / "run")


def test_a_killed_worker_ends_the_run_naming_it(tmp_path):
    m = model(tmp_path, 5000)
    p = start("run", m, "--out", "run", "--workers", "2", "--verbose", cwd=tmp_path)
    wait_for(lambda: (tmp_path / "run" / "history.csv").exists(), 120, p)
    rank1 = next(pid for pid, r in children(p.pid).items() if r == 1)
    t0 = time.monotonic()
    os.kill(rank1, signal.SIGKILL)
    _, err = p.communicate(timeout=60)
    assert time.monotonic() - t0 < 30
    assert p.returncode != 0
    assert "error: worker rank 1 was killed by SIGKILL" in err, err


def test_a_port_in_use_is_refused_before_any_worker_starts(tmp_path):
    m = model(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = nncompile("run", m, "--workers", "2", cwd=tmp_path, extra_env={"MASTER_PORT": str(port)})
    assert r.returncode == 2
    assert f"MASTER_PORT {port} is in use on 127.0.0.1" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()


def test_program_fit_workers_trains_what_fit_trains(tmp_path):
    import nncompile
    p = nncompile.compile(str(model(tmp_path)))
    one = p.fit(quiet=True)
    two = p.fit(workers=2, quiet=True)
    assert two.record is None and two.epochs_run == 3
    for k, v in one.history.items():
        np.testing.assert_allclose(two.history[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    for k, v in one.trainer.host("model_state").items():
        np.testing.assert_allclose(two.trainer.host("model_state")[k], v, rtol=1e-4, atol=2e-6, err_msg=k)


def test_the_digits_example_on_two_workers_reaches_one_workers_accuracy(tmp_path):
    """... and only rank 0 prints and writes the run folder."""
    digits = ROOT / "examples" / "digits.nn"
    one = nncompile("run", digits, "--epochs", "3", "--out", "one", "--quiet", cwd=tmp_path)
    two = nncompile("run", digits, "--epochs", "3", "--out", "two", "--workers", "2", "--quiet", cwd=tmp_path)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    # 128 units, batch norm, Adam: a unit whose batch variance is near zero turns
    # the float32 reduction-order differences into ~1e-4 weight differences
    assert_same_run(tmp_path / "one", tmp_path / "two", weights_atol=1e-3, history_rtol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]   # rank 1 wrote nothing
    assert two.stdout.count("Finished 3 epochs") == 1 and two.stderr.count("run saved to") == 1
    acc = [np.genfromtxt(tmp_path / r / "history.csv", delimiter=",", names=True)["val_accuracy"]
           for r in ("one", "two")]
    np.testing.assert_allclose(acc[1], acc[0], atol=1e-6)   # the same validation samples right, each epoch
    assert acc[1][-1] > 0.8


def test_torchrun_starts_the_same_workers(tmp_path):
    from nncompile.runtime.launcher import free_port
    m = model(tmp_path)
    assert nncompile("run", m, "--out", "one", "--quiet", cwd=tmp_path).returncode == 0
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                        "127.0.0.1", "--master-port", str(free_port()), "-m", "nncompile", "run", str(m), "--out",
                        "two", "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                       env=env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Finished 3 epochs") == 1
    assert_same_run(tmp_path / "one", tmp_path / "two")


def test_a_non_finite_loss_is_reported_as_one_process_reports_it(tmp_path):
    """Every worker sees the reduced NaN, replays the epoch in step and stops;
    rank 0 prints one process's report (the replay's interpreter step runs on
    the whole global batch)."""
    m = model(tmp_path)
    m.write_text(m.read_text().replace("adam(lr=0.01)", "sgd(lr=1e25)"))
    one = nncompile("run", m, "--out", "one", "--quiet", cwd=tmp_path)
    two = nncompile("run", m, "--out", "two", "--quiet", "--workers", "2", cwd=tmp_path)
    assert one.returncode == two.returncode == 1
    report = one.stderr[:one.stderr.index("run saved to")]
    assert "the first non-finite value is" in report
    assert two.stderr.startswith(report), two.stderr
