"""Training: the supernet by single-path uniform sampling, or one stand-alone architecture from
scratch (the retraining step). ``spos_tf.train`` is the command line; this module is the
library's public face, re-exporting the names of the modules that do the work::

    config = TrainConfig(workdir="/tmp/qs", space="shufflenet_oneshot",
                         space_overrides={"image_size": 16, "width": 0.25, "repeats": (1, 1, 2, 1)},
                         steps=600, batch_size=64, optimizer="adam", learning_rate=3e-3)
    final_record = run(config)

Where each part lives:

- :mod:`spos_tf.train_config`: the settings (:class:`TrainConfig`, its checks) and
  :func:`resolve` (data-dependent settings, space, architecture, path sampler).
- :mod:`spos_tf.strategy`: the ``tf.distribute`` strategy and this process's place in it.
- :mod:`spos_tf.train_recipe`: loss, learning-rate schedule, optimizer, deterministic dropout.
- :mod:`spos_tf.train_step`: the one training step (sample, forward, backward, masked update).
- :mod:`spos_tf.train_metrics`: the ``metrics.jsonl`` records and TensorBoard scalars.
- :mod:`spos_tf.train_eval`: evaluation on a non-distributed twin (BN recalibrated per path).
- :mod:`spos_tf.train_loop`: :func:`run`, the loop with checkpoints, resume and divergence stop.
- :mod:`spos_tf.few_shot`: a few-shot split (``few_shot_split``): one sub-supernet run per choice
  of one gene, each from the one-shot supernet's weights; :func:`run` dispatches to it.
"""

from spos_tf.strategy import STRATEGIES, make_strategy, mirrored_strategy, task_of, workers_of
from spos_tf.train_config import (
    EVAL_SPLITS,
    LR_SCHEDULES,
    NEUTRAL_FIELDS,
    OPTIMIZERS,
    SAMPLINGS,
    ConfigError,
    Resolved,
    TrainConfig,
    resolve,
)
from spos_tf.train_eval import EVAL_STEP_OFFSET, Evaluator
from spos_tf.train_loop import DivergenceError, run
from spos_tf.train_metrics import TensorBoard
from spos_tf.train_recipe import (
    SmoothedSparseCE,
    StepDropout,
    make_dropout_deterministic,
    make_optimizer,
    make_schedule,
)

__all__ = [
    "STRATEGIES",
    "make_strategy",
    "mirrored_strategy",
    "task_of",
    "workers_of",
    "EVAL_SPLITS",
    "LR_SCHEDULES",
    "NEUTRAL_FIELDS",
    "OPTIMIZERS",
    "SAMPLINGS",
    "ConfigError",
    "Resolved",
    "TrainConfig",
    "resolve",
    "EVAL_STEP_OFFSET",
    "Evaluator",
    "DivergenceError",
    "run",
    "TensorBoard",
    "SmoothedSparseCE",
    "StepDropout",
    "make_dropout_deterministic",
    "make_optimizer",
    "make_schedule",
]
