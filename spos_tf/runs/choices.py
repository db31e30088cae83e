"""The allowed values (and shared help texts) of settings that more than one stage reads, each
defined once here, and the one rule that turns a calibration size in images into batches
(:func:`calib_batches`).

Plain tuples, no TensorFlow: the configs (``search_config``, ``train_config``, ``export_config``)
define their flags from these without importing the libraries that act on them
(``spos_tf.models.evaluate``, ``spos_tf.models.precision``), which re-export the same objects.
"""

import numbers

# BN recalibration before a candidate is scored (spos_tf.models.evaluate.PathEvaluator): the exact
# cumulative average, the release's EMA (PyTorch momentum 0.1), or batch statistics at scoring.
CALIB_MODES = ("exact", "ema", "batch_stats")

# Keras mixed-precision policies (spos_tf.models.precision).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

# The split a final number is reported on: the search's held-out split or the test split.
EVAL_SPLITS = ("holdout", "test")

# The help of --supernet_step, a flag of spos_tf.search and of spos_tf.rank (which passes it on to
# its scoring settings): both score a supernet run at one of its saved checkpoints.
SUPERNET_STEP_HELP = (
    "Score the supernet's checkpoint saved at this training step (one its checkpoint index "
    "still lists: the last --keep_checkpoints, one every --checkpoint_every steps) instead of "
    "its latest, e.g. an earlier point of the run. Default: the latest checkpoint."
)


def calib_batches(images: int, batch_size: int) -> int:
    """Batches of ``batch_size`` that BN recalibration reads for ``images`` images:
    ``ceil(images / batch_size)``, so a count that is not a multiple of the batch size is rounded
    up to whole batches. The one rule of every app that takes ``--calib_images``: training
    (batches of ``--eval_batch_size``), the search and the ranking (``--calib_batch_size``), the
    export (its ``--calib_batch_size``).

    Raises:
      ValueError: ``images`` or ``batch_size`` is not an integer >= 1.
    """
    for name, value in (("images", images), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"calibration {name} must be an integer >= 1, got {value!r}")
    return -(-int(images) // int(batch_size))
