"""The one training step of spos_tf, used by every trainer.

:func:`train_step` is the central algorithm of Single Path One-Shot training: for a supernet, draw
the path of ``(seed, optimizer.iterations)``, store it in ``model.arch_var`` (which the masked
optimizer reads), run that path forward and backward, and apply the masked update; for a
stand-alone network the same without the sampling. Its callers only add what their loop needs:

* ``Supernet.train_step`` (Keras ``fit``, the tests and ``benchmarks/supernet_step.py``) passes
  the compiled Keras loss and computes the compiled metrics from the returned logits;
* ``spos_tf.train.loop`` (the app) passes the per-example loss summed over the global batch,
  runs it per replica under ``strategy.run`` and stops the run when ``finite`` is false.

Like Keras' ``Model.train_step``, it runs inside one replica (in a ``tf.function``, or eagerly
for single-device debugging); with a ``tf.distribute`` strategy the gradients are all-reduced by
``apply_gradients``, so ``loss_fn`` must scale the loss for the global batch.

With a fair sampler (``--sampling=fair``) the step trains all K paths of
:class:`~spos_tf.models.sampling.FairSampler` in one update; with a pair sampler
(``--sampling=rank_pairs``, :mod:`spos_tf.models.rank_pairs`) two paths plus a margin ranking loss
(:func:`ranking_hinge`) in one update.

Cost: one forward and backward pass of one path (K with a fair sampler, 2 with a pair sampler),
the masked update (about 5% of a step, see :mod:`spos_tf.models.optim`), a host callback for the
sampler (tens of microseconds) and one global gradient norm for the finite check (a reduction
over the gradients; pruned by graph optimisation when the caller does not use ``finite``).
"""

from __future__ import annotations

from typing import NamedTuple

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf.models import precision


class StepOutput(NamedTuple):
    """What one step returns (per replica; tensors).

    Attributes:
      loss: the scalar that was differentiated (``loss_fn(labels, logits)``).
      logits: the model's output on the step's images (training mode).
      finite: scalar bool, the loss and the global gradient norm are finite. The update has been
        applied either way; a caller that sees ``False`` should stop (``spos_tf.train.loop``
        raises ``DivergenceError`` and keeps the last good checkpoint). With a loss-scaled
        optimizer (``mixed_float16``) non-finite gradients count as finite while the loss scale
        used was above 1: that step was skipped and the scale halved (an overflow, not a
        divergence).
      macs: float32 scalar, MACs of the trained path (the supernet's sampled path, else
        ``fixed_macs``).
    """

    loss: tf.Tensor
    logits: tf.Tensor
    finite: tf.Tensor
    macs: tf.Tensor


def is_supernet(model) -> bool:
    """True for a model that samples its path per step (``spos_tf.models.supernet.Supernet``)."""
    return hasattr(model, "sample_arch_tensor") and hasattr(model, "arch_var")


def train_step(
    model, optimizer, loss_fn, images, labels, fixed_macs: float = 0.0, loss_weight=None
) -> StepOutput:
    """One training step of ``model`` on ``(images, labels)``: the one definition in spos_tf.

    Args:
      model: a ``Supernet`` (the path is ``model.sample_arch_tensor(optimizer.iterations)``,
        assigned to ``model.arch_var`` before the update so that a masked optimizer moves only
        that path's weights, BN statistics and slots), or any Keras model trained whole.
      optimizer: a Keras optimizer over ``model.trainable_variables``; for a supernet a bound
        :class:`spos_tf.models.optim.MaskedOptimizer` (``Supernet.compile`` or ``optimizer.bind``),
        possibly inside a loss-scale optimizer (``spos_tf.models.precision.loss_scaled``): the loss is
        then scaled and the gradients unscaled here, and a step whose gradients overflow is
        skipped for every variable.
      loss_fn: ``loss_fn(labels, logits) -> scalar``, the value to differentiate, already scaled
        for the global batch under a distribution strategy.
      images, labels: this replica's batch.
      fixed_macs: the MACs reported for a model that does not sample (a stand-alone network).
      loss_weight: optional ``loss_weight(step, macs) -> scalar`` for a supernet: the sampled
        path's loss is multiplied by it before differentiating (the L2 term, added by the
        optimizer, is not), i.e. that path's gradient step is scaled; DYNAS's complexity-aware
        rate (:func:`spos_tf.train.recipe.complexity_aware_weight`). ``step`` is
        ``optimizer.iterations`` before this update. The returned ``loss`` stays unweighted.

    Returns:
      :class:`StepOutput`. ``optimizer.iterations`` has advanced by one.
    """
    if is_supernet(model) and getattr(model.sampler, "pairs", False):
        return _pair_step(model, optimizer, loss_fn, images, labels, loss_weight)
    if is_supernet(model) and getattr(model, "paths_per_step", 1) > 1:
        return _fair_step(model, optimizer, loss_fn, images, labels, loss_weight)
    if is_supernet(model):
        arch, macs = model.sample_arch_tensor(optimizer.iterations)
        model.arch_var.assign(arch)
        kwargs = {"arch": arch}
    else:
        macs, kwargs = tf.constant(fixed_macs, tf.float32), {}
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        logits = model(images, training=True, **kwargs)
        loss = loss_fn(labels, logits)
        objective = _weighted(loss, loss_weight, optimizer, macs) if is_supernet(model) else loss
    grads, loss_scale = precision.gradients(optimizer, tape, objective, variables)
    finite = _finite(loss, grads, loss_scale)
    optimizer.apply_gradients(zip(grads, variables))
    return StepOutput(loss, logits, finite, macs)


def _finite(loss, grads, loss_scale):
    """Scalar bool: ``loss`` and the global norm of ``grads`` are finite (a loss-scaled step
    whose scale was above 1 counts as finite: its overflow was skipped and the scale halved)."""
    grads_ok = tf.math.is_finite(tf.linalg.global_norm([g for g in grads if g is not None]))
    if loss_scale is not None:
        grads_ok = tf.logical_or(grads_ok, loss_scale > 1.0)
    return tf.logical_and(tf.math.is_finite(loss), grads_ok)


def _weighted(loss, loss_weight, optimizer, macs):
    """``loss * loss_weight(step, macs)`` (``loss`` itself without a weight)."""
    if loss_weight is None:
        return loss
    return loss * tf.cast(loss_weight(optimizer.iterations, macs), loss.dtype)


def _fair_step(model, optimizer, loss_fn, images, labels, loss_weight=None) -> StepOutput:
    """FairNAS's step (``--sampling=fair``): the K paths of ``model.sample_paths_tensor`` (every
    choice of every block once) run forward and backward on the same batch one after the other,
    each updating only its own BN statistics (the other choices' layers do not run); their
    gradients are summed and applied in one update, which moves every choice. Returns the mean
    loss, the last path's logits and the mean MACs of the K paths."""
    archs, macs = model.sample_paths_tensor(optimizer.iterations)
    variables = model.trainable_variables
    total, losses, finite, logits = None, [], tf.constant(True), None
    for k in range(model.paths_per_step):
        model.arch_var.assign(archs[k])
        with tf.GradientTape() as tape:
            logits = model(images, training=True, arch=archs[k])
            loss = loss_fn(labels, logits)
            objective = _weighted(loss, loss_weight, optimizer, macs[k])
        grads, loss_scale = precision.gradients(optimizer, tape, objective, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        total = grads if total is None else [a + b for a, b in zip(total, grads)]
        losses.append(loss)
        finite = tf.logical_and(finite, _finite(loss, grads, loss_scale))
    optimizer.apply_gradients(zip(total, variables))
    return StepOutput(tf.add_n(losses) / len(losses), logits, finite, tf.reduce_mean(macs))


def ranking_hinge(loss_a, loss_b, macs, margin, replicas=1):
    """The margin ranking loss of a pair step (RD-NAS, MACs as the teacher): the path with more
    MACs should have the lower loss, by at least ``margin``:
    ``max(0, margin - (loss_fewer - loss_more))``; 0 when the two paths have equal MACs.

    ``loss_a``, ``loss_b`` are this replica's losses scaled for the global batch (their sum over
    ``replicas`` replicas is the batch mean), so the hinge is taken on each replica's own mean
    loss (``loss * replicas``) and divided by ``replicas`` again: the summed gradient is the mean
    of the replicas' hinge gradients. With one replica it is the hinge of the batch mean."""
    replicas = tf.cast(replicas, loss_a.dtype)
    sign = tf.sign(tf.cast(macs[0] - macs[1], loss_a.dtype))  # +1: path a has more MACs
    gap = (loss_b - loss_a) * sign * replicas  # loss_fewer - loss_more, per replica mean
    return tf.nn.relu(tf.cast(margin, loss_a.dtype) - gap) * tf.abs(sign) / replicas


def _pair_step(model, optimizer, loss_fn, images, labels, loss_weight=None) -> StepOutput:
    """The ranking-distillation step (``--sampling=rank_pairs``): the two paths of
    ``model.sample_pair_tensor`` run forward on the same batch under one tape (each updates its
    own BN statistics; shared layers such as the stem update theirs twice); the objective is the
    sum of the two (complexity-weighted) losses plus ``model.sampler.weight`` times
    :func:`ranking_hinge`; one masked update moves the union of the two paths' weights
    (``model.step_paths_var``). Returns the mean of the two losses, path a's logits and the mean
    MACs of the pair."""
    inner = precision.inner_optimizer(optimizer)
    if getattr(inner, "_groups", None) is not None:
        raise ValueError(
            "--sampling=rank_pairs trains two paths in one update, which momentum separation "
            "cannot split between slot sets: drop --momentum_split or use another --sampling"
        )
    archs, macs, margin = model.sample_pair_tensor(optimizer.iterations)
    model.arch_var.assign(archs[0])
    model.step_paths_var.assign(archs)
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        logits = model(images, training=True, arch=archs[0])
        loss_a = loss_fn(labels, logits)
        loss_b = loss_fn(labels, model(images, training=True, arch=archs[1]))
        hinge = ranking_hinge(loss_a, loss_b, macs, margin, replicas)
        objective = (
            _weighted(loss_a, loss_weight, optimizer, macs[0])
            + _weighted(loss_b, loss_weight, optimizer, macs[1])
            + tf.cast(model.sampler.weight, loss_a.dtype) * hinge
        )
    grads, loss_scale = precision.gradients(optimizer, tape, objective, variables)
    finite = _finite(objective, grads, loss_scale)
    optimizer.apply_gradients(zip(grads, variables))
    return StepOutput((loss_a + loss_b) / 2, logits, finite, tf.reduce_mean(macs))
