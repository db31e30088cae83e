"""Test setup: the CPU split into 2 logical devices so that MirroredStrategy tests run with 2
replicas on any machine (must run before TensorFlow initialises), and shared fixtures.

The repository root and tests/ are on sys.path through pytest's configuration (``pythonpath`` in
pyproject.toml), so test modules import spos_tf and the helper modules tests/_*.py directly; they
never import each other (shared helpers live in tests/_*.py, shared fixtures here). Apps and
benchmark scripts run in a subprocess only through tests/_apps.py.
"""

import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialised by an earlier import in this process
    pass


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
    from spos_tf import train as train_lib

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return train_lib.mirrored_strategy(devices)


@pytest.fixture(scope="session")
def nb201(tmp_path_factory):
    """A tiny trained NAS-Bench-201 supernet (flags/tiny_nb201_supernet.cfg, trained once per
    session by the app), a fixture table and its data folder: ``(supernet_dir, table path,
    data_dir)``. Shared by the rank tests: they read the supernet and table and must not write
    into them (copy the folder with shutil.copytree first)."""
    import _nb201

    if not _nb201.NB201_FLAGS.exists():
        pytest.skip("flags/tiny_nb201_supernet.cfg is missing")
    return _nb201.train_supernet(tmp_path_factory.mktemp("nb201"))


def import_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (the benchmarks are scripts, not a package)."""
    import importlib
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)
