"""The allowed values of settings that more than one stage reads, each list defined once here.

Plain tuples, no TensorFlow: the configs (``search_config``, ``train_config``, ``export_config``)
define their flags from these without importing the libraries that act on them
(``spos_tf.models.evaluate``, ``spos_tf.models.precision``), which re-export the same objects.
"""

# BN recalibration before a candidate is scored (spos_tf.models.evaluate.PathEvaluator): the exact
# cumulative average, the release's EMA (PyTorch momentum 0.1), or batch statistics at scoring.
CALIB_MODES = ("exact", "ema", "batch_stats")

# Keras mixed-precision policies (spos_tf.models.precision).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

# The split a final number is reported on: the search's held-out split or the test split.
EVAL_SPLITS = ("holdout", "test")
