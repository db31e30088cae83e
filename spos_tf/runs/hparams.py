"""Results in TensorBoard's HParams dashboard: one session per architecture.

``write_sessions(logdir, sessions)`` writes, with TensorBoard's own ``hparams`` summary API, one
session per architecture (its genes and costs as hyperparameters, its accuracies as metrics), so
that ``tensorboard --logdir=<logdir>`` lets a user sort, filter and plot candidates in the HParams
tab. The folder is rewritten as a whole (built beside it, then swapped in), so readers never see a
half-written set (only, for a moment, no folder): :func:`spos_tf.runs.run_dir.replacing`. Writers may
run concurrently (e.g. shards that finish together): each moves the previous set aside under its
own name, and the last swap wins.
Cost: a few milliseconds per session; call it when results change, not per step.
"""

from __future__ import annotations

import os

from spos_tf.runs import run_dir


def write_sessions(logdir: str, sessions: list) -> int:
    """Writes ``sessions`` to ``logdir`` (replacing what was there); returns how many.

    Safe against a concurrent writer of the same ``logdir`` (one complete set is left: the
    last one swapped in) and against the leftovers of a crashed writer (``<logdir>.old`` or
    ``<logdir>.old.<hex>`` folders are removed).

    Args:
      logdir: the HParams log folder.
      sessions: dicts ``{"name": str, "hparams": {name: number or str}, "metrics": {name:
        number or None}}``; every session should carry the same keys (the first one's define the
        dashboard's columns). None metrics are left out of that session.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with run_dir.replacing(logdir, folder=True) as tmp:
        if sessions:
            first = sessions[0]
            with tf.summary.create_file_writer(tmp).as_default():
                hp.hparams_config(
                    hparams=[hp.HParam(k) for k in first["hparams"]],
                    metrics=[hp.Metric(k) for k in first["metrics"]],
                )
        for session in sessions:
            writer = tf.summary.create_file_writer(os.path.join(tmp, session["name"]))
            with writer.as_default():
                hp.hparams(session["hparams"], trial_id=session["name"])
                for name, value in session["metrics"].items():
                    if value is not None:
                        tf.summary.scalar(name, float(value), step=0)
            writer.close()
    return len(sessions)
