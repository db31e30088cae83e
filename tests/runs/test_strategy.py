"""spos_tf.runs.strategy: the strategy of --strategy and this process's place in the cluster."""

import json

import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import tensorflow as tf
from spos_tf.runs.strategy import make_strategy, mirrored_strategy, task_of, workers_of


class _Resolver:  # the two things task_of/workers_of read from a cluster resolver
    def __init__(self, cluster, task_type, task_id):
        self.task_type, self.task_id = task_type, task_id
        self._spec = tf.train.ClusterSpec(cluster)

    def cluster_spec(self):
        return self._spec


class _Strategy:
    def __init__(self, *args):
        self.cluster_resolver = _Resolver(*args)


WORKERS = {"worker": ["a:1", "b:1", "c:1"]}
WITH_CHIEF = {"chief": ["c:0"], "worker": ["a:1", "b:1"]}


@pytest.mark.parametrize(
    "cluster, task_type, task_id, task, workers",
    [
        (WORKERS, "worker", 0, (True, None), (3, 0)),  # worker 0 is the chief
        (WORKERS, "worker", 2, (False, "worker_2"), (3, 2)),
        (WITH_CHIEF, "chief", 0, (True, None), (3, 0)),  # the chief is worker 0 ...
        (WITH_CHIEF, "worker", 0, (False, "worker_0"), (3, 1)),  # ... and the workers follow it
        (WITH_CHIEF, "worker", 1, (False, "worker_1"), (3, 2)),
    ],
)
def test_task_and_worker_index_of_each_process(cluster, task_type, task_id, task, workers):
    strategy = _Strategy(cluster, task_type, task_id)
    assert task_of(strategy) == task
    assert workers_of(strategy) == workers


def test_a_single_process_is_the_chief_and_the_only_worker():
    strategy = make_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert task_of(strategy) == (True, None) and workers_of(strategy) == (1, 0)


def test_mirrored_strategies_are_shared_per_device_list():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert mirrored_strategy(devices) is mirrored_strategy(tuple(devices))


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "needs the cluster in TF_CONFIG"),
        ("{not json", "TF_CONFIG is not valid JSON"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "needs the cluster in TF_CONFIG"),
    ],
)
def test_multi_worker_needs_a_cluster(tf_config, message, monkeypatch):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        make_strategy("multi_worker")


def test_an_unknown_strategy_names_the_choices():
    with pytest.raises(
        ValueError, match="--strategy must be one of default, mirrored, multi_worker; got 'tpu'"
    ):
        make_strategy("tpu")
