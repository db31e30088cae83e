"""Results in TensorBoard's HParams dashboard: one session per architecture.

``write_sessions(logdir, sessions)`` writes, with TensorBoard's own ``hparams`` summary API, one
session per architecture (its genes and costs as hyperparameters, its accuracies as metrics), so
that ``tensorboard --logdir=<logdir>`` lets a user sort, filter and plot candidates in the HParams
tab. The folder is rewritten as a whole (built beside it, then swapped in), so readers never see a
half-written set. Cost: a few milliseconds per session; call it when results change, not per step.
"""

from __future__ import annotations

import os
import shutil
import tempfile


def write_sessions(logdir: str, sessions: list) -> int:
    """Writes ``sessions`` to ``logdir`` (replacing what was there); returns how many.

    Args:
      logdir: the HParams log folder.
      sessions: dicts ``{"name": str, "hparams": {name: number or str}, "metrics": {name:
        number or None}}``; every session should carry the same keys (the first one's define the
        dashboard's columns). None metrics are left out of that session.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    parent = os.path.dirname(os.path.abspath(logdir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(logdir) + ".", dir=parent)
    try:
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
        old = logdir + ".old"
        if os.path.exists(logdir):
            os.replace(logdir, old)
        os.replace(tmp, logdir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(sessions)
