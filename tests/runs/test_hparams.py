"""spos_tf.runs.hparams: sessions written with TensorBoard's HParams API read back from the files."""

import glob
import os
import threading

import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from spos_tf.runs import hparams


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


def _sessions(prefix, count):
    return [
        {"name": f"{prefix}_{i}", "hparams": {"op_00": i}, "metrics": {"supernet_accuracy": i / 10}}
        for i in range(count)
    ]


def _assert_one_complete_set(logdir, *candidates):
    """``logdir`` holds exactly the sessions of one of ``candidates``, each with its metric."""
    names = sorted(d for d in os.listdir(logdir) if not d.startswith("events"))
    match = [c for c in candidates if names == [s["name"] for s in c]]
    assert match, f"{names} is none of the written sets"
    for session in match[0]:
        got = read_events(os.path.join(logdir, session["name"]))["supernet_accuracy"]
        assert abs(got[0] - session["metrics"]["supernet_accuracy"]) < 1e-7
    return match[0]


def test_a_stale_old_copy_does_not_block_later_writes(tmp_path):
    logdir = str(tmp_path / "hparams")
    hparams.write_sessions(logdir, SESSIONS)
    # a crash left old copies behind (the legacy name and a per-writer one)
    for stale in ("hparams.old", "hparams.old." + "0" * 32):
        os.makedirs(tmp_path / stale / "arch_9")
    assert hparams.write_sessions(logdir, SESSIONS[1:]) == 1
    _assert_one_complete_set(logdir, SESSIONS[1:])
    assert sorted(os.listdir(tmp_path)) == ["hparams"]
    # crash between the two swaps: no logdir, only an old copy
    os.replace(logdir, str(tmp_path / "hparams.old"))
    assert hparams.write_sessions(logdir, SESSIONS) == 2
    _assert_one_complete_set(logdir, SESSIONS)
    assert sorted(os.listdir(tmp_path)) == ["hparams"]


def test_two_writers_swapping_at_once_both_return_and_leave_one_complete_set(tmp_path, monkeypatch):
    logdir = str(tmp_path / "hparams")
    hparams.write_sessions(logdir, SESSIONS)
    real_replace, barrier, local = os.replace, threading.Barrier(2, timeout=60), threading.local()

    def replace(src, dst):
        if not getattr(local, "waited", False):  # both writers reach their first swap together
            local.waited = True
            barrier.wait()
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    sets, errors = [_sessions("a", 2), _sessions("b", 3)], []

    def write(sessions):
        try:
            assert hparams.write_sessions(logdir, sessions) == len(sessions)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(s,)) for s in sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    _assert_one_complete_set(logdir, *sets)
    assert sorted(os.listdir(tmp_path)) == ["hparams"]


def test_a_writer_whose_swap_is_overtaken_retries_and_wins(tmp_path, monkeypatch):
    logdir = str(tmp_path / "hparams")
    hparams.write_sessions(logdir, SESSIONS)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(src)
        result = real_replace(src, dst)
        if len(calls) == 1:  # right after writer A moved the old set aside, B writes entirely
            monkeypatch.setattr(os, "replace", real_replace)
            assert hparams.write_sessions(logdir, _sessions("b", 3)) == 3
            monkeypatch.setattr(os, "replace", replace)
        return result

    monkeypatch.setattr(os, "replace", replace)
    assert hparams.write_sessions(logdir, _sessions("a", 2)) == 2
    assert (
        _assert_one_complete_set(logdir, _sessions("a", 2), _sessions("b", 3))[0]["name"] == "a_0"
    )
    assert sorted(os.listdir(tmp_path)) == ["hparams"]
