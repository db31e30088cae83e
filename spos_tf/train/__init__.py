"""Training: the supernet by single-path uniform sampling, or one stand-alone architecture from
scratch (the retraining step). ``spos_tf.train`` is the command line; this module is the
library's public face, re-exporting the names of the modules that do the work::

    config = TrainConfig(workdir="/tmp/qs", space="shufflenet_oneshot",
                         space_overrides={"image_size": 16, "width": 0.25, "repeats": (1, 1, 2, 1)},
                         steps=600, batch_size=64, optimizer="adam", learning_rate=3e-3)
    final_record = run(config)

Where each part lives:

- :mod:`spos_tf.train.config`: the settings (:class:`TrainConfig`, its checks) and
  :func:`resolve` (data-dependent settings, space, architecture, path sampler).
- :mod:`spos_tf.runs.strategy`: the ``tf.distribute`` strategy and this process's place in it.
- :mod:`spos_tf.train.recipe`: loss, learning-rate schedule, optimizer, deterministic dropout.
- :mod:`spos_tf.models.step`: the one training step (sample, forward, backward, masked update).
- :mod:`spos_tf.train.metrics`: the ``metrics.jsonl`` records and TensorBoard scalars.
- :mod:`spos_tf.train.eval`: evaluation on a non-distributed twin (BN recalibrated per path).
- :mod:`spos_tf.train.loop`: :func:`run`, the loop with checkpoints, resume and divergence stop.
- :mod:`spos_tf.train.few_shot`: a few-shot split (``few_shot_split``): one sub-supernet run per choice
  of one gene, each from the one-shot supernet's weights; :func:`run` dispatches to it.

The names resolve lazily, so importing one module of the package imports no other."""

from spos_tf._lazy import lazy_exports

_LAZY = {
    "STRATEGIES": ("spos_tf.runs.strategy", "STRATEGIES"),
    "make_strategy": ("spos_tf.runs.strategy", "make_strategy"),
    "mirrored_strategy": ("spos_tf.runs.strategy", "mirrored_strategy"),
    "task_of": ("spos_tf.runs.strategy", "task_of"),
    "workers_of": ("spos_tf.runs.strategy", "workers_of"),
    "EVAL_SPLITS": ("spos_tf.train.config", "EVAL_SPLITS"),
    "LR_SCHEDULES": ("spos_tf.train.config", "LR_SCHEDULES"),
    "NEUTRAL_FIELDS": ("spos_tf.train.config", "NEUTRAL_FIELDS"),
    "OPTIMIZERS": ("spos_tf.train.config", "OPTIMIZERS"),
    "SAMPLINGS": ("spos_tf.train.config", "SAMPLINGS"),
    "ConfigError": ("spos_tf.train.config", "ConfigError"),
    "Resolved": ("spos_tf.train.config", "Resolved"),
    "TrainConfig": ("spos_tf.train.config", "TrainConfig"),
    "resolve": ("spos_tf.train.config", "resolve"),
    "EVAL_STEP_OFFSET": ("spos_tf.train.eval", "EVAL_STEP_OFFSET"),
    "Evaluator": ("spos_tf.train.eval", "Evaluator"),
    "DivergenceError": ("spos_tf.train.loop", "DivergenceError"),
    "run": ("spos_tf.train.loop", "run"),
    "TensorBoard": ("spos_tf.train.metrics", "TensorBoard"),
    "SmoothedSparseCE": ("spos_tf.train.recipe", "SmoothedSparseCE"),
    "StepDropout": ("spos_tf.train.recipe", "StepDropout"),
    "make_dropout_deterministic": ("spos_tf.train.recipe", "make_dropout_deterministic"),
    "make_optimizer": ("spos_tf.train.recipe", "make_optimizer"),
    "make_schedule": ("spos_tf.train.recipe", "make_schedule"),
}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
