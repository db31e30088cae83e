"""Mixed precision: Keras dtype policies and loss scaling that keep the masked update exact.

``precision`` is one of :data:`PRECISIONS`:

* ``"float32"``: everything in float32 (the default).
* ``"mixed_float16"``: layers compute in float16, variables stay float32 (Keras'
  ``mixed_float16`` policy); the loss is scaled (dynamic loss scale, Keras' defaults: start at
  2**15, halve on overflow, double after 2,000 finite steps) so that small float16 gradients do
  not underflow. The hardware this pays off on: GPUs with tensor cores.
* ``"mixed_bfloat16"``: layers compute in bfloat16, variables float32; bfloat16 has float32's
  range, so no loss scaling. Pays off on TPUs, recent GPUs and CPUs with AMX/AVX512-BF16.

What stays exact: the masked optimizers (:mod:`spos_tf.models.optim`) still select the new value only on
the sampled path, in float32 (the variables, slots and gradients are float32: a gradient is cast
back to its variable's dtype), so unsampled choices keep their weights, slots and BN statistics
bit for bit under every policy. With ``mixed_float16`` a step whose scaled gradients overflow
(any Inf/NaN, all-reduced across replicas) is skipped for every variable by Keras'
``LossScaleOptimizer`` (the step counter still advances, so the next step trains the next path),
and the loss scale is halved. The BN moving statistics of a skipped step's path are those of
its forward pass, as in Keras (the forward pass was finite; only the backward one overflowed).

Where the policy applies: a model takes the global policy at construction, so the apps build
their models inside :func:`policy_scope` and the optimizer through :func:`loss_scaled`; the one
training step (:func:`spos_tf.models.step.train_step`) scales and unscales through
:func:`gradients`. The layers of :mod:`spos_tf.models.layers` compute in the policy's compute dtype
(BN with float32 statistics, as Keras' BatchNormalization), the quantizers of
:mod:`spos_tf.quant` fake-quantize in float32 and return the compute dtype, and the head's
logits are float32.

Cost: none for ``float32`` (no wrapper, no extra op). ``mixed_float16`` adds a multiply of the
loss, one of each gradient, an all-finite reduction and a ``tf.cond`` around the update.
"""

from __future__ import annotations

import contextlib

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras
from tf_keras.src.mixed_precision.loss_scale_optimizer import LossScaleOptimizerV3

from spos_tf.runs.choices import PRECISIONS


def check(precision: str) -> str:
    """Returns ``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
      ValueError: naming the flag, the allowed values and the bad value.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"--precision must be one of {', '.join(PRECISIONS)}; got "
            f"{precision!r} (mixed_float16 for GPUs, mixed_bfloat16 for TPUs and "
            f"CPUs with bfloat16 units)"
        )
    return precision


@contextlib.contextmanager
def policy_scope(precision: str):
    """Sets Keras' global dtype policy to ``precision`` for the ``with`` body (models built in it
    compute in that policy for their whole life) and restores the previous global policy on
    exit, also after an error. Yields the policy."""
    check(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield keras.mixed_precision.global_policy()
    finally:
        keras.mixed_precision.set_global_policy(previous)


class MaskedLossScaleOptimizer(LossScaleOptimizerV3):
    """Keras' dynamic ``LossScaleOptimizer`` around a :class:`spos_tf.models.optim.MaskedOptimizer`.

    The masked update itself is untouched: when the step's gradients are all finite the inner
    optimizer applies them (selecting the sampled path), else nothing is applied. Adds
    :meth:`bind`, so code that binds a masked optimizer to its supernet works with either.
    Checkpoints hold the inner optimizer's variables under the same names plus the loss scale.
    """

    def bind(self, model):
        """Binds the inner masked optimizer to ``model`` (see ``MaskedOptimizer.bind``)."""
        self.inner_optimizer.bind(model)


def is_loss_scaled(optimizer) -> bool:
    """True for a Keras loss-scale optimizer (ours, or one that ``Model.compile`` made)."""
    return isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)


def loss_scaled(optimizer, precision: str):
    """``optimizer`` wrapped in a :class:`MaskedLossScaleOptimizer` for ``"mixed_float16"``;
    unchanged for the other precisions and for an optimizer that is already loss-scaled.
    Create it in the distribution strategy's scope, like the optimizer."""
    check(precision)
    if precision != "mixed_float16" or is_loss_scaled(optimizer):
        return optimizer
    return MaskedLossScaleOptimizer(optimizer)


def inner_optimizer(optimizer):
    """The optimizer that computes the update: the inner one of a loss-scale optimizer."""
    return optimizer.inner_optimizer if is_loss_scaled(optimizer) else optimizer


def gradients(optimizer, tape: tf.GradientTape, loss, variables) -> tuple:
    """``(gradients, loss_scale)`` of ``loss`` with respect to ``variables``.

    With a loss-scaled ``optimizer`` the loss is multiplied by the current loss scale on
    ``tape`` (re-entered), and the gradients are divided by it again; ``loss_scale`` is the scale
    used (a float32 scalar, read before ``apply_gradients`` changes it). Otherwise plain
    ``tape.gradient`` and ``loss_scale`` None. Gradients are per replica (not yet all-reduced).
    """
    if not is_loss_scaled(optimizer):
        return tape.gradient(loss, variables), None
    scale = tf.identity(optimizer.loss_scale)
    with tape:
        scaled = optimizer.get_scaled_loss(loss)
    return optimizer.get_unscaled_gradients(tape.gradient(scaled, variables)), scale
