"""The training recipe as Keras objects: the label-smoothed loss, the learning-rate schedule, the
(masked) optimizer, and dropout whose masks are a function of ``(seed, step, replica)``.

Each builder reads the settings it needs from a :class:`~spos_tf.train.config.TrainConfig`; the
paper's recipe is SGD 0.5 with momentum 0.9 decayed linearly per step to 0, L2 4e-5 on kernels
only, label smoothing 0.1 (see ``flags/supernet.cfg``).
"""

from __future__ import annotations

import math

import numpy as np
import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from spos_tf.train.config import CALR_GAMMA_MAX


class SmoothedSparseCE(keras.losses.Loss):
    """Cross-entropy from logits with integer labels and label smoothing (one-hot inside).

    ``call`` returns the per-example loss; reduction follows the Keras ``reduction`` argument.
    """

    def __init__(
        self,
        num_classes: int,
        label_smoothing: float = 0.0,
        reduction=keras.losses.Reduction.AUTO,
        name="smoothed_sparse_ce",
    ):
        super().__init__(reduction=reduction, name=name)
        self.num_classes, self.label_smoothing = int(num_classes), float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = tf.one_hot(
            tf.cast(tf.reshape(y_true, [-1]), tf.int32), self.num_classes, dtype=y_pred.dtype
        )
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        return tf.nn.softmax_cross_entropy_with_logits(labels, y_pred)

    def get_config(self):
        return dict(
            super().get_config(), num_classes=self.num_classes, label_smoothing=self.label_smoothing
        )


def make_schedule(config):
    """``config.lr_schedule`` over ``config.lr_schedule_steps`` (default ``config.steps``) from
    ``config.learning_rate``, read from its step ``config.lr_schedule_start``: a Keras schedule
    (``"linear"``, ``"cosine"``, both ending at 0 at the schedule's end) or the constant rate
    itself (``"constant"``, and ``"complexity_aware"``, whose per-path decay is the loss weight
    of :func:`complexity_aware_weight`)."""
    lr = config.learning_rate
    steps = config.lr_schedule_steps or config.steps
    if config.lr_schedule == "linear":
        schedule = keras.optimizers.schedules.PolynomialDecay(lr, steps, 0.0, power=1.0)
    elif config.lr_schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.0)
    else:
        return lr
    start = config.lr_schedule_start
    return _Shifted(schedule, start) if start else schedule


class _Shifted(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` read ``start`` steps on (``--lr_schedule_start``)."""

    def __init__(self, schedule, start: int):
        self.schedule, self.start = schedule, int(start)

    def __call__(self, step):
        return self.schedule(step + self.start)

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "start": self.start,
        }

    @classmethod
    def from_config(cls, config):
        schedule = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(schedule, config["start"])


def calr_exponent(macs, macs_min: float, macs_max: float, gamma_max: float = CALR_GAMMA_MAX):
    """DYNAS's decay exponent of a path: linear in ``log(macs)`` from ``gamma_max`` at
    ``macs_min`` to ``1 / gamma_max`` at ``macs_max`` (1 for every path of a space whose paths
    all cost the same). Works on floats and tensors."""
    if macs_max <= macs_min:
        return macs * 0 + 1.0
    slope = (1.0 / gamma_max - gamma_max) / (math.log(macs_max) - math.log(macs_min))
    log = tf.math.log if tf.is_tensor(macs) else np.log
    return gamma_max + slope * (log(macs) - math.log(macs_min))


def complexity_aware_weight(config, space):
    """``weight(step, macs)`` for ``--lr_schedule=complexity_aware`` (DYNAS's complexity-aware
    rate, CaLR): ``(1 - (step + lr_schedule_start) / T) ** calr_exponent(macs)`` with
    ``T = lr_schedule_steps or steps`` and the exponent spanning the MACs range of ``space``,
    from ``config.calr_gamma_max`` (DYNAS's 4 by default) down to its inverse. The train step
    multiplies the sampled path's loss by it under a constant ``learning_rate`` (as the DYNAS
    release does): with plain SGD that is the rate ``learning_rate * weight``; the L2 term is
    not weighted. Cost: a few scalar ops per step."""
    from spos_tf.models.sampling import macs_bounds

    macs_min, macs_max = macs_bounds(space)
    total = float(config.lr_schedule_steps or config.steps)
    start = float(config.lr_schedule_start)

    def weight(step, macs):
        left = tf.maximum(1.0 - (tf.cast(step, tf.float32) + start) / total, 0.0)
        macs = tf.clip_by_value(tf.cast(macs, tf.float32), macs_min, macs_max)
        return tf.pow(left, calr_exponent(macs, macs_min, macs_max, config.calr_gamma_max))

    return weight


def lr_at(schedule, step: int) -> float:
    """The learning rate of ``schedule`` (from :func:`make_schedule`) at 0-based ``step``."""
    return float(schedule(step)) if callable(schedule) else float(schedule)


def make_optimizer(config):
    """Masked SGD/Adam (without owners, i.e. for a stand-alone model, they are plain SGD/Adam with
    L2 on kernels only), with one slot set per op of ``config.momentum_split``'s edge when set;
    loss-scaled for ``precision="mixed_float16"``."""
    from spos_tf.models import precision

    schedule = make_schedule(config)
    split = config.momentum_split
    if config.optimizer == "sgd":
        optimizer = spos_tf.MaskedSGD(
            schedule,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            momentum_split=split,
        )
    else:
        optimizer = spos_tf.MaskedAdam(
            schedule, weight_decay=config.weight_decay, momentum_split=split
        )
    return precision.loss_scaled(optimizer, config.precision)  # mixed_float16: loss scaling


class StepDropout(keras.layers.Layer):
    """Dropout whose mask is a stateless function of ``(seed, step, replica)``.

    Keras' seeded ``Dropout`` uses a stateful op whose stream restarts in a new process, so a
    resumed run would draw other masks; this one reads the step from ``step_fn()`` (the
    optimizer's iteration counter, which is checkpointed).
    """

    def __init__(self, rate: float, seed: int, step_fn, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), int(seed)
        self._step_fn = step_fn  # a function, so Keras does not track the counter as a weight

    def call(self, x, training=None):
        if not training or not self.rate:
            return x
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        replica = tf.cast(replica, tf.int64)
        seed = tf.stack(
            [
                tf.constant(self.seed, tf.int64) + 1_000_003 * replica,
                tf.cast(self._step_fn(), tf.int64),
            ]
        )
        return tf.nn.experimental.stateless_dropout(x, self.rate, seed)


def make_dropout_deterministic(model, step_fn, seed: int) -> None:
    """Replaces the head's Keras ``Dropout`` (no variables) by a :class:`StepDropout`."""
    head = model.head if hasattr(model, "head") else model.get_layer("head")
    old = head.dropout
    head.dropout = StepDropout(
        old.rate, (seed * 7919 + 17) % (2**31 - 1), step_fn, name="step_dropout"
    )
