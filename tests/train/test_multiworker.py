"""Two-process MultiWorkerMirroredStrategy training on 127.0.0.1 (tiny space, 2 ops, 4 steps).

Both workers run the real app (``python -m spos_tf.train --strategy=multi_worker``) with a
``TF_CONFIG`` each; the global batch of 32 is split 16/16. They must end with bit-identical weights
and optimizer slots, and the masked-update guarantee must hold across workers: every (block, op)
that no step sampled keeps its initial weights. About 30 s on an idle 2-core machine.
"""

import json
import socket
import subprocess

import numpy as np
import pytest

import spos_tf  # noqa: F401
import tensorflow as tf
from spos_tf.runs import run_dir
from spos_tf.data import DataConfig, dataset_info

from _apps import app_env, start_app
from _train_checks import assert_only_sampled_choices_moved, checkpoint_values

pytestmark = pytest.mark.slow  # starts several app processes

TIMEOUT_S = 400  # about 30 s idle; a shared, loaded 2-core machine has needed over 150 s
STEPS = 4


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _checkpoint(folder):
    path = tf.train.latest_checkpoint(str(folder))
    assert path and path.endswith(f"ckpt-{STEPS}"), path
    return checkpoint_values(path)


def test_two_workers_end_with_identical_weights_and_masked_updates(tmp_path):
    data_dir = str(tmp_path / "tfds")
    dataset_info(DataConfig(name="spos_digits", data_dir=data_dir))  # prepare once, not racing
    workdir = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    args = [
        "--flagfile=flags/tiny_supernet.cfg",
        "--strategy=multi_worker",
        f"--steps={STEPS}",
        "--checkpoint_every=2",
        "--log_every=2",
        "--eval_paths=2",
        "--ops=shuffle3x3,xception",
        "--noprogress",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
    ]
    procs = []
    try:
        for index in range(2):
            task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            procs.append(start_app("train", *args, env=app_env(TF_CONFIG=json.dumps(task))))
        outs = []
        for index, proc in enumerate(procs):
            try:
                outs.append(proc.communicate(timeout=TIMEOUT_S)[0])
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {index} did not finish in {TIMEOUT_S} s (collective hang?)")
            assert proc.returncode == 0, f"worker {index} failed:\n{outs[-1][-4000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert "on 2 replica(s)" in outs[0] and "held-out accuracy of 2 random paths" in outs[0]
    assert "accuracy" not in outs[1]  # only the chief logs and evaluates
    chief = _checkpoint(run_dir.checkpoint_dir(str(workdir)))
    worker = _checkpoint(run_dir.checkpoint_dir(str(workdir), "worker_1"))
    assert chief.keys() == worker.keys() and len(chief) > 100
    different = [k for k in chief if not np.array_equal(chief[k], worker[k])]
    assert not different, f"{len(different)} tensors differ between workers: {different[:3]}"
    records = run_dir.MetricsLog(str(workdir)).read()
    assert [r["step"] for r in records] == [2, 4, 4] and records[-1]["final"]

    # Masked updates: a (block, op) sampled by no step keeps its initial weights on every worker.
    assert assert_only_sampled_choices_moved(workdir, STEPS) > 0
