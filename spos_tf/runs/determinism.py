"""Bit-reproducible training graphs: TensorFlow's Grappler graph optimizer turned off.

Measured on the NAS-Bench-201 supernet of ``flags/nb201_supernet.cfg`` (32 px, C=16, N=2, batch
128; ``benchmarks/determinism.py``, ``benchmarks/RESULTS.md`` "training is not bit-reproducible"):
with Grappler on, two processes that train from the same weights on the same batches and paths
part after one or two steps (differences of 1e-9 in a few kernels, then everywhere), with every
thread count tried and with oneDNN on or off, and ``TF_DETERMINISTIC_OPS=1`` does not help; eager
execution and graphs run with Grappler off repeat bit for bit. None of the seven single Grappler
passes tried, turned off alone, was enough. Cost: the step time of that supernet on 2 CPU cores
stayed within the run-to-run noise; graphs that Grappler would fuse or lay out for a GPU may run
slower.
"""

from __future__ import annotations

import contextlib

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

_OPTION = "disable_meta_optimizer"


@contextlib.contextmanager
def reproducible_graphs(enabled: bool = True):
    """Within the block, graphs first run (``tf.function`` calls) skip Grappler; the process's
    previous setting comes back after. ``enabled=False`` changes nothing.

    The option is process-wide and read when a function's graph is first run, so trace and first
    call the functions to be reproducible inside the block."""
    if not enabled:
        yield
        return
    before = bool(tf.config.optimizer.get_experimental_options().get(_OPTION, False))
    tf.config.optimizer.set_experimental_options({_OPTION: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({_OPTION: before})
