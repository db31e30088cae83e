"""What a training run logs: the records of ``metrics.jsonl`` (means over a window of steps,
built on the host from the step's outputs and the sampled paths' costs) and their TensorBoard
scalars.

Record of a window (``log_every`` steps): ``step``, ``loss``, ``accuracy``, ``learning_rate``
(of the window's last update), ``arch_macs`` (mean MACs of the trained paths),
``steps_per_second``, ``examples_per_second``; for a quantized space ``arch_bitops``; with MACs
bins (``TrainConfig.cost_bins``, or ``sampling="cost_bins"``) ``path_bins`` (sampled paths per
bin) and ``path_bins_outside``.
"""

from __future__ import annotations

import time

import numpy as np
import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf import costs as costs_lib
from spos_tf.models.sampling import REFERENCE_BINS, bin_index, check_bins
from spos_tf.spaces.space import SearchSpace
from spos_tf.train.recipe import lr_at


def path_macs(space: SearchSpace, arch) -> float:
    """MACs of ``arch`` (a table lookup)."""
    return float(costs_lib.CostTable(space).macs(arch))


def bitops_fn(resolved):
    """``f(step) -> BitOps`` of the path trained at ``step`` (0-based) for a quantized space,
    else None. The supernet's path of a step is ``sampler(step)`` (a host-side table lookup,
    ~tens of microseconds); a stand-alone network's is fixed.

    Args:
      resolved: a :class:`~spos_tf.train.config.Resolved` config.
    """
    space = resolved.space
    if not space.quantized:
        return None
    table = costs_lib.table(space)
    if resolved.arch is not None:
        bitops = float(table.bitops(resolved.arch))
        return lambda step: bitops
    return lambda step: float(table.bitops(resolved.sampler(step)))


def bin_fn(resolved):
    """``(edges, f(step) -> bin index or -1)`` of the supernet's sampled path at ``step`` (0-based)
    for the histogram in metrics.jsonl, or None without bins (see ``TrainConfig.cost_bins``)."""
    config = resolved.config
    edges = config.cost_bins or (REFERENCE_BINS if config.sampling == "cost_bins" else None)
    if edges is None or not config.is_supernet:
        return None
    edges, table = check_bins(edges), costs_lib.table(resolved.space)
    return edges, lambda step: bin_index(edges, table.macs(resolved.sampler(step)))


class MetricsWindow:
    """Sums the steps' outputs until :meth:`record` turns them into one ``metrics.jsonl`` record
    and starts a new window. Host-side, a few microseconds a step (plus the cost lookups of
    :func:`bitops_fn` and :func:`bin_fn` where they apply).

    Args:
      resolved: the run's :class:`~spos_tf.train.config.Resolved` config.
      schedule: the learning-rate schedule (:func:`spos_tf.train.recipe.make_schedule`).
    """

    def __init__(self, resolved, schedule):
        self.batch_size, self.schedule = resolved.config.batch_size, schedule
        self._bitops, self._bins = bitops_fn(resolved), bin_fn(resolved)
        self._sums = np.zeros(5)  # loss, correct, macs, steps, bitops
        # sampled paths per bin; the last entry counts those outside every bin
        self._counts = np.zeros(len(self._bins[0]) if self._bins else 0, np.int64)
        self._start = time.monotonic()

    def add(self, step: int, loss: float, correct: float, macs: float) -> None:
        """Adds the outputs of ``step`` (1-based: the step just done)."""
        self._sums += (loss, correct, macs, 1, self._bitops(step - 1) if self._bitops else 0.0)
        if self._bins:
            self._counts[self._bins[1](step - 1)] += 1  # -1 (outside) counts in the last entry

    def record(self, step: int) -> dict:
        """The record of the window ending at ``step``; starts the next window."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        sums, n = self._sums, self._sums[3]
        record = {
            "step": step,
            "loss": sums[0] / n,
            "accuracy": sums[1] / (n * self.batch_size),
            "learning_rate": lr_at(self.schedule, step - 1),
            "arch_macs": sums[2] / n,
            "steps_per_second": n / elapsed,
            "examples_per_second": n * self.batch_size / elapsed,
        }
        if self._bitops:
            record["arch_bitops"] = sums[4] / n
        if self._bins:
            record["path_bins"] = self._counts[:-1].tolist()
            record["path_bins_outside"] = int(self._counts[-1])
            self._counts[:] = 0
        self._sums[:] = 0
        self._start = time.monotonic()
        return record


class TensorBoard:
    """Scalar summaries under ``<workdir>/tb`` (``tf.summary.scalar``; chief only)."""

    def __init__(self, logdir: str, enabled: bool = True):
        self.writer = tf.summary.create_file_writer(logdir) if enabled else None

    def write(self, step: int, scalars: dict) -> None:
        if self.writer is None:
            return
        with self.writer.as_default(step=int(step)):
            for name, value in scalars.items():
                tf.summary.scalar(name, float(value))
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
