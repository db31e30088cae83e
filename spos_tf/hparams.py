"""Results in TensorBoard's HParams dashboard: one session per architecture.

``write_sessions(logdir, sessions)`` writes, with TensorBoard's own ``hparams`` summary API, one
session per architecture (its genes and costs as hyperparameters, its accuracies as metrics), so
that ``tensorboard --logdir=<logdir>`` lets a user sort, filter and plot candidates in the HParams
tab. The folder is rewritten as a whole (built beside it, then swapped in), so readers never see a
half-written set (only, for a moment, no folder). Writers may run concurrently (e.g. shards that
finish together): each moves the previous set aside under its own name, and the last swap wins.
Cost: a few milliseconds per session; call it when results change, not per step.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import uuid

SWAP_ATTEMPTS = 100  # swaps lost to concurrent writers before write_sessions gives up


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
        _swap_in(tmp, logdir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(sessions)


def _swap_in(tmp: str, logdir: str) -> None:
    """Replaces ``logdir`` by the complete folder ``tmp``, retrying when a concurrent writer swaps
    its own folder in between; then removes old copies (this writer's and stale ones)."""
    logdir = os.path.abspath(logdir)
    for _ in range(SWAP_ATTEMPTS):
        old = f"{logdir}.old.{uuid.uuid4().hex}"  # unique: never collides with another writer
        try:
            os.replace(logdir, old)
        except FileNotFoundError:
            pass  # nothing there yet, or another writer moved it aside first
        try:
            os.replace(tmp, logdir)
            break
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not os.path.exists(logdir):
                with contextlib.suppress(OSError):
                    os.replace(old, logdir)  # best effort: put the previous set back
                raise
            # another writer's complete set landed in between: move it aside too, and retry
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        raise RuntimeError(
            f"could not swap the HParams sessions into {logdir}: {SWAP_ATTEMPTS} concurrent "
            "writers' swaps won in a row; write from fewer processes at once"
        )
    _remove_old_copies(logdir)


def _remove_old_copies(logdir: str) -> None:
    """Removes ``<logdir>.old`` and ``<logdir>.old.<32 hex>`` beside ``logdir``: old copies that
    a crashed writer left behind (or that a concurrent writer is removing anyway)."""
    parent, base = os.path.split(logdir)
    pattern = re.escape(base) + r"\.old(\.[0-9a-f]{32})?"
    for name in os.listdir(parent):
        if re.fullmatch(pattern, name):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
