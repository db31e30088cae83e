"""Checkpoint weight averaging (SWA-style, Izmailov et al., UAI 2018) of a trained run.

:func:`average_checkpoints` writes a new run directory whose one checkpoint holds the element-wise
mean of the model's weights at several saved steps of a source run. Every app that reads a run
directory (``spos_tf.rank``, ``spos_tf.search``, ``spos_tf.export``) reads it like the source.
BN moving statistics are averaged too; the search and rank apps recalibrate them per candidate
anyway (``--calib_mode``), which is what SWA prescribes after averaging.

Cost: one model build and one checkpoint read per step averaged (seconds for the NAS-Bench-201
proxy supernet); nothing is trained.
"""

from __future__ import annotations

import json
import os

from spos_tf.runs import run_dir

AVERAGED_FROM_FILE = "averaged_from.json"


class AverageError(ValueError):
    """Bad arguments to :func:`average_checkpoints`; the message names the fix."""


def average_checkpoints(workdir: str, steps, out: str) -> str:
    """Writes ``out``: a run directory whose checkpoint is the mean of ``workdir``'s at ``steps``.

    Args:
      workdir: a finished ``spos_tf.train`` run (supernet or stand-alone network).
      steps: the checkpoint steps to average (at least 2, each saved in ``workdir``).
      out: the new run directory; it must not hold a run already (nothing is overwritten).

    Returns:
      the path prefix of the checkpoint written, ``<out>/checkpoints/ckpt-<max(steps)>``.
      ``<out>/averaged_from.json`` records the source and the steps; ``<out>/config.json`` is the
      source's with ``workdir`` replaced.

    Raises:
      AverageError: fewer than 2 distinct steps, a step with no checkpoint, or ``out`` holding a
        run. run_dir.RunDirError / CheckpointError: ``workdir`` is not a readable run.

    The steps saved are those its checkpoint index lists (:func:`run_dir.saved_checkpoints`).
    """
    import numpy as np
    import tensorflow as tf

    steps = sorted({int(s) for s in steps})
    saved = run_dir.saved_checkpoints(run_dir.checkpoint_dir(workdir))
    if len(steps) < 2:
        raise AverageError(
            f"average over at least 2 checkpoint steps (got {steps}); "
            f"{workdir!r} holds steps {list(saved)}"
        )
    config = run_dir.load_run_config(workdir)
    missing = [s for s in steps if s not in saved]
    if missing:
        raise AverageError(
            f"{workdir!r} has no checkpoint at step(s) {missing}; it holds steps {list(saved)}. "
            f"Pick among those (training keeps the last --keep_checkpoints)"
        )
    if os.path.exists(os.path.join(out, run_dir.CONFIG_FILE)) or os.path.isdir(
        run_dir.checkpoint_dir(out)
    ):
        raise AverageError(
            f"{out!r} already holds a run; choose a new folder (nothing was written)"
        )
    space = run_dir.space_from_config(config)
    model = run_dir.build_model(config, space)
    checkpoint = tf.train.Checkpoint(model=model)
    total = None
    for step in steps:
        run_dir.read_checkpoint(checkpoint, saved[step], partial=True)
        values = [v.numpy().astype(np.float64) for v in model.variables]
        total = values if total is None else [t + v for t, v in zip(total, values)]
    for variable, value in zip(model.variables, total):
        if variable.dtype.is_floating:
            variable.assign((value / len(steps)).astype(variable.dtype.as_numpy_dtype))
        # integer variables (none in today's models) keep the last step's value
    run_dir.write_config(out, dict(config, workdir=os.fspath(out)))
    run_dir.atomic_write_json(
        os.path.join(out, AVERAGED_FROM_FILE),
        {"source": os.fspath(workdir), "steps": steps},
    )
    manager = tf.train.CheckpointManager(checkpoint, run_dir.checkpoint_dir(out), max_to_keep=1)
    return manager.save(checkpoint_number=steps[-1])


def read_averaged_from(workdir: str) -> dict | None:
    """``<workdir>/averaged_from.json`` (None for a run that was trained, not averaged)."""
    path = os.path.join(workdir, AVERAGED_FROM_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
