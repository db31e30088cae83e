"""spos_tf.hparams: sessions written with TensorBoard's HParams API read back from the files."""

import glob
import os

import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from spos_tf import hparams


def read_events(folder):
    """{tag: [(plugin content or scalar value)]} of every event file under ``folder``."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content
                    )
                    out.setdefault(value.tag, []).append(data)
                else:
                    out.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return out


SESSIONS = [
    {
        "name": "arch_0",
        "hparams": {"op_00": 2, "macs": 1.5e5},
        "metrics": {"supernet_accuracy": 0.75, "standalone_accuracy": 0.9},
    },
    {
        "name": "arch_1",
        "hparams": {"op_00": 0, "macs": 0.9e5},
        "metrics": {"supernet_accuracy": 0.6, "standalone_accuracy": None},
    },
]


def test_sessions_carry_their_hparams_and_metrics(tmp_path):
    logdir = str(tmp_path / "hparams")
    assert hparams.write_sessions(logdir, SESSIONS) == 2
    assert sorted(os.listdir(logdir)) == [
        "arch_0",
        "arch_1",
        *[f for f in os.listdir(logdir) if f.startswith("events")],
    ]
    root = read_events(logdir)
    experiment = root["_hparams_/experiment"][0].experiment
    assert {h.name for h in experiment.hparam_infos} == {"op_00", "macs"}
    assert {m.name.tag for m in experiment.metric_infos} == {
        "supernet_accuracy",
        "standalone_accuracy",
    }
    arch0 = read_events(os.path.join(logdir, "arch_0"))
    start = arch0["_hparams_/session_start_info"][0].session_start_info
    assert start.hparams["op_00"].number_value == 2 and start.hparams["macs"].number_value == 1.5e5
    assert abs(arch0["supernet_accuracy"][0] - 0.75) < 1e-7
    arch1 = read_events(os.path.join(logdir, "arch_1"))
    assert "standalone_accuracy" not in arch1  # a None metric is left out


def test_rewriting_replaces_the_old_sessions(tmp_path):
    logdir = str(tmp_path / "hparams")
    hparams.write_sessions(logdir, SESSIONS)
    hparams.write_sessions(logdir, SESSIONS[1:])
    assert [d for d in os.listdir(logdir) if not d.startswith("events")] == ["arch_1"]
    assert sorted(os.listdir(tmp_path)) == ["hparams"]  # no temporary or .old folder left
