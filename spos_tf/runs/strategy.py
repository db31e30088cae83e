"""The ``tf.distribute`` strategy of a run and where this process sits in it.

``--strategy`` names one of :data:`STRATEGIES`; :func:`make_strategy` builds it (create it before
any other TensorFlow op: ``MultiWorkerMirroredStrategy`` must come first), :func:`task_of` and
:func:`workers_of` read this process's role from the strategy's cluster resolver (no collective
op, no cost).
"""

from __future__ import annotations

import json
import os

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf.runs import config_flags

STRATEGIES = ("default", "mirrored", "multi_worker")
_MIRRORED = {}


def mirrored_strategy(devices) -> tf.distribute.MirroredStrategy:
    """One ``MirroredStrategy`` per device list for the whole process.

    Two MirroredStrategy objects in one process hand out the same collective instance keys, and
    the second one's all-reduces then fail with "Shape mismatch in the collective instance"; so
    runs in one process (tests, notebooks, the pipeline) share one strategy per device list.
    """
    key = tuple(devices)
    if key not in _MIRRORED:
        _MIRRORED[key] = tf.distribute.MirroredStrategy(list(key))
    return _MIRRORED[key]


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy of ``--strategy`` (create it before any other TF op;
    ``mirrored`` is shared within a process, see :func:`mirrored_strategy`).

    Raises:
      ValueError: an unknown name; ``multi_worker`` without a ``TF_CONFIG`` cluster.
    """
    config_flags.check_value("strategy", name, "str", {"choices": STRATEGIES})
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return mirrored_strategy(devices)
    tf_config = os.environ.get("TF_CONFIG", "")
    try:
        cluster = json.loads(tf_config).get("cluster") if tf_config else None
    except ValueError:
        raise ValueError(f"TF_CONFIG is not valid JSON: {tf_config[:200]!r}") from None
    if not cluster:
        raise ValueError(
            '--strategy=multi_worker needs the cluster in TF_CONFIG, e.g. TF_CONFIG=\'{"cluster": '
            '{"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
            '"index": 0}}\' on each worker (index 0 is the chief)'
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def task_of(strategy) -> tuple:
    """``(is_chief, task_name)``; ``task_name`` is None for the chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, None
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
    return chief, None if chief else f"{task_type}_{task_id}"


def workers_of(strategy) -> tuple:
    """``(number of workers, this worker's index)``; the chief, if any, is worker 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return 1, 0
    cluster = resolver.cluster_spec().as_dict()
    has_chief = "chief" in cluster
    count = len(cluster.get("worker", [])) + (1 if has_chief else 0)
    if resolver.task_type == "chief":
        return count, 0
    return count, (resolver.task_id or 0) + (1 if has_chief else 0)
