"""Test setup: the package on sys.path, and the CPU split into 2 logical devices so that
MirroredStrategy tests run with 2 replicas on any machine. Must run before TensorFlow initialises."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import spos_tf  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS)
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised by an earlier import in this process
    pass

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One TFDS data directory for the session: the embedded digits are prepared there once and
    read by every app test that asks for it."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def mirrored():
    """One MirroredStrategy over the 2 logical CPUs for the whole session: several strategies in
    one process reuse collective instance keys and then fail with 'Shape mismatch in the
    collective instance'."""
    from spos_tf import train_lib
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return train_lib.mirrored_strategy(devices)
