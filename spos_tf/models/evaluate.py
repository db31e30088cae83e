"""Scoring a path with inherited weights: exact BN recalibration, then held-out top-1 accuracy.

The fitness of a candidate in the search (paper Sec. 3, step 3) is computed on the trained supernet
itself: :meth:`Supernet.set_arch` assigns the path to ``arch_var`` (no retrace, no rebuild), the BN
statistics of that path are recomputed on calibration images, and the path is evaluated on the
held-out split. :class:`PathEvaluator` holds the two traced functions, so any number of candidates
costs one trace of each.

BN recalibration is an *exact cumulative average*: for calibration batch ``t = 1..T`` the model's
shared BN momentum (``model.bn_control.momentum``, read by every BN layer) is set to ``(t - 1) / t``
and the model runs in training mode on the batch, so after ``T`` batches every BN layer on the path
holds ``moving_mean = mean_t(batch_mean_t)`` and ``moving_variance = mean_t(unbiased batch
variance_t)`` (what PyTorch's ``momentum=None`` computes, and what the reference's per-candidate
recalibration approximates). Batch ``t = 1`` has momentum 0 and overwrites the old statistics, so no
reset is needed; BN layers that are not on the path do not run and keep their statistics
bit-identical (their assign ops live in ``tf.switch_case`` branches that do not execute; with channel
search only the leading slice of a shared statistic is written). Afterwards the momentum is restored
to ``bn_control.default``. Nothing else changes: recalibration runs no gradient and no optimizer.

``calib_mode="ema"`` offers the reference's per-candidate recalibration instead: every BN layer of
the model is reset (moving mean 0, moving variance 1, as the reference resets all of the
supernet's), then the batches run in training mode with the fixed momentum ``ema_momentum`` (Keras
form: 0.9 = PyTorch's default momentum 0.1), so the statistics are an exponential average weighted
towards the last batches, with ``ema_momentum ** T`` of the reset values left (0.9^200 = 7e-10 after
the reference's 200 batches; 12% after 20). Unlike the exact mode, it changes the statistics of BN
layers off the path too (to their reset values).

``calib_mode="batch_stats"`` recalibrates nothing: every scored batch is normalised by its own
statistics (BN in batch-statistics mode, no running statistics read or written; dropout and
everything else stay in inference mode), as the NAS-Bench-201 authors score weight-sharing
supernets. The score then depends on the evaluation batch size (a batch of 1 has no statistics:
use batches of a few hundred images) and the moving statistics of the model stay bit-identical.
Cost: one inference pass over the held-out data per candidate, no calibration passes.

With a ``finetuner`` (:class:`~spos_tf.models.finetune.PathFinetuner`, ``--finetune_steps``)
:meth:`PathEvaluator.__call__` first trains the path alone for a few steps on ``finetune_ds``,
then recalibrates and scores it, and restores every variable of the model afterwards.

Per-candidate data: ``calib_ds`` and ``holdout_ds`` may also be functions
``index -> tf.data.Dataset`` that give candidate ``index`` its own images (the search's
``--calib_stream=fresh`` and ``--holdout_images_per_candidate``, :mod:`spos_tf.search.data`);
:meth:`PathEvaluator.__call__` then takes the candidate's index. Every candidate's data must have
the same element signature (batches of the same static shape), so the two traces still serve all
of them.

The same code serves a stand-alone network (:func:`spos_tf.build_standalone` models have a
``bn_control`` too), e.g. for the final "BN statistics with learning rate 0" pass of retraining::

    used = recalibrate_bn(model, calib_ds, num_batches=200)

Cost per candidate: ``T`` training-mode forward passes plus one inference pass over the held-out
data, all on device inside two ``tf.function`` loops (one host round trip each); no gradients.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf.runs.choices import CALIB_MODES

_CACHE_ATTR = "_spos_path_evaluator"
# A data set, or a function giving candidate ``index`` its own (see the module docstring).
Data = Union[tf.data.Dataset, Callable[[int], tf.data.Dataset]]


def _images(batch):
    """The images of a calibration element: ``(images, labels, ...)`` or plain ``images``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


class PathEvaluator:
    """Recalibrates BN and measures held-out top-1 accuracy of paths of one model.

    Holds one traced calibration loop and one traced evaluation loop. Both take a ``tf.data``
    iterator and loop over it on device; the architecture is read from ``model.arch_var`` at run
    time, so every candidate reuses the same two traces (see :attr:`calib_traces`,
    :attr:`eval_traces`). A new trace happens only for a data set of another element signature.

    Args:
      model: a :class:`~spos_tf.models.supernet.Supernet` (needed for :meth:`__call__`) or a stand-alone
        network; it must have a ``bn_control`` (:class:`~spos_tf.models.layers.BNControl`).
      calib_ds: default calibration data: a ``tf.data.Dataset`` of ``(images, labels)`` or of
        images, in batches (training images, no augmentation); its first ``num_calib_batches``
        batches are used for every candidate (iterate a fixed, finite data set to give every
        candidate the same images). Or a function ``index -> tf.data.Dataset``: candidate
        ``index``'s own calibration batches (e.g. :class:`spos_tf.search.data.FreshCalibration`).
      holdout_ds: default evaluation data: a finite ``tf.data.Dataset`` of ``(images, labels)``
        batches; every batch is used (a partial last batch is fine). Or a function
        ``index -> tf.data.Dataset`` (e.g. :class:`spos_tf.search.data.RotatingHoldout`).
      num_calib_batches: calibration batches per candidate.
      calib_mode: ``"exact"`` (cumulative average, the default), ``"ema"`` (the reference's
        reset + exponential average) or ``"batch_stats"`` (no recalibration; every evaluated
        batch normalised by its own statistics), see the module docstring.
      ema_momentum: the ``"ema"`` mode's BN momentum (Keras form).
      finetuner: optional :class:`~spos_tf.models.finetune.PathFinetuner`: :meth:`__call__` then
        trains each candidate alone on ``finetune_ds`` before recalibrating and scoring it, and
        restores the model afterwards (``--finetune_steps``).
      finetune_ds: the fine-tuning batches ``(images, labels)``, a data set or a function
        ``index -> data set``; required with ``finetuner``.

    Raises:
      TypeError: ``model`` has no ``bn_control``.
      ValueError: ``num_calib_batches`` < 1, unknown ``calib_mode``, ``ema_momentum`` not in
        [0, 1).
    """

    def __init__(
        self,
        model,
        calib_ds: Data | None = None,
        holdout_ds: Data | None = None,
        num_calib_batches: int = 1,
        calib_mode: str = "exact",
        ema_momentum: float = 0.9,
        finetuner=None,
        finetune_ds: Data | None = None,
    ):
        control = getattr(model, "bn_control", None)
        if control is None or not hasattr(control, "momentum"):
            raise TypeError(
                f"{type(model).__name__} has no bn_control: BN recalibration needs a "
                f"model built by spos_tf.build_supernet or spos_tf.build_standalone"
            )
        _check_batches(num_calib_batches)
        if calib_mode not in CALIB_MODES:
            raise ValueError(
                f"--calib_mode must be one of {', '.join(CALIB_MODES)}, got {calib_mode!r}"
            )
        if not 0.0 <= ema_momentum < 1.0:
            raise ValueError(f"ema_momentum must be in [0, 1), got {ema_momentum!r}")
        if finetuner is not None and finetune_ds is None:
            raise ValueError("a finetuner needs its data: pass finetune_ds too")
        self.calib_mode, self.ema_momentum = calib_mode, float(ema_momentum)
        self.finetuner, self.finetune_ds = finetuner, finetune_ds
        self.model = model
        self.calib_ds, self.holdout_ds = calib_ds, holdout_ds
        self.num_calib_batches = int(num_calib_batches)
        self._calib_fn = tf.function(self._calibrate_loop)
        self._ema_fn = tf.function(self._ema_loop)
        self._eval_fn = tf.function(self._evaluate_loop)
        self._eval_bs_fn = tf.function(self._evaluate_loop)  # traced with batch statistics
        self.last_log_likelihood = None  # of the last evaluate() (see there)

    # ------------------------------------------------------------------ traced loops
    def _calibrate_loop(self, iterator):
        momentum = self.model.bn_control.momentum
        t = tf.constant(0.0)
        for batch in iterator:
            t += 1.0
            momentum.assign((t - 1.0) / t)
            self.model(_images(batch), training=True)
        return t

    def _ema_loop(self, iterator):
        self.model.bn_control.momentum.assign(self.ema_momentum)
        t = tf.constant(0.0)
        for batch in iterator:
            t += 1.0
            self.model(_images(batch), training=True)
        return t

    def reset_bn(self) -> int:
        """Sets every BN layer's moving mean to 0 and moving variance to 1 (the reference's reset
        before its EMA recalibration); returns the number of BN layers."""
        from spos_tf.models.layers import BatchNorm

        layers = [m for m in self.model.submodules if isinstance(m, BatchNorm)]
        for layer in layers:
            layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
            layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
        return len(layers)

    def _evaluate_loop(self, iterator):
        correct = tf.constant(0, tf.int64)
        count = tf.constant(0, tf.int64)
        nll = tf.constant(0.0, tf.float64)  # summed cross-entropy of the true class
        for images, labels in iterator:
            logits = self.model(images, training=False)
            labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int64)
            correct += tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
            count += tf.size(labels, out_type=tf.int64)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels, tf.cast(logits, tf.float32)
            )
            nll += tf.reduce_sum(tf.cast(loss, tf.float64))
        return correct, count, nll

    # ------------------------------------------------------------------ public API
    @property
    def calib_traces(self) -> int:
        """Number of traces of the calibration loop so far (either mode)."""
        return (
            self._calib_fn.experimental_get_tracing_count()
            + self._ema_fn.experimental_get_tracing_count()
        )

    @property
    def eval_traces(self) -> int:
        """Number of traces of the evaluation loop so far."""
        return (
            self._eval_fn.experimental_get_tracing_count()
            + self._eval_bs_fn.experimental_get_tracing_count()
        )

    @property
    def per_candidate(self) -> bool:
        """Whether the constructor's data gives each candidate its own images (a function of
        the candidate's index rather than one data set)."""
        return _is_function(self.calib_ds) or _is_function(self.holdout_ds)

    def recalibrate(
        self,
        calib_ds: Data | None = None,
        num_batches: int | None = None,
        index: int | None = None,
    ) -> int:
        """Recomputes the BN statistics of the current path on calibration batches (exactly, or
        by the reference's reset + EMA with ``calib_mode="ema"``). A model whose wrappers keep
        running statistics of their own has a hook ``model.recalibration_reset(model, arch)``
        (set by :mod:`spos_tf.build`: the activation-quantizer ranges of a quantized space); it
        is called first, with the current path (None for a stand-alone network), so the same
        batches re-estimate that state too.

        Args:
          calib_ds: the data (default: the constructor's); its first ``num_batches`` are used.
          num_batches: default: the constructor's ``num_calib_batches``.
          index: the candidate's index, for calibration data given as a function of it.

        Returns:
          The number of batches used: ``num_batches``, or fewer if ``calib_ds`` ran out.

        Raises:
          ValueError: no calibration data, or it yielded no batch (then the statistics are those
            before the call); per-candidate data without ``index``.
        """
        if self.calib_mode == "batch_stats":
            return 0  # scored with the statistics of each evaluated batch: nothing to recompute
        ds = self.calib_ds if calib_ds is None else calib_ds
        if ds is None:
            raise ValueError("no calibration data: pass calib_ds here or to PathEvaluator()")
        ds = _for_candidate(ds, index, "calibration")
        n = self.num_calib_batches if num_batches is None else _check_batches(num_batches)
        control = self.model.bn_control
        space = getattr(self.model, "space", None)
        reset_extra = getattr(self.model, "recalibration_reset", None)
        if reset_extra is not None:
            # state the wrappers added (spos_tf.build: activation-quantizer ranges) restarts too,
            # so the calibration batches re-estimate it; the hook gets the path (None: all)
            arch_var = getattr(self.model, "arch_var", None)
            reset_extra(
                self.model, None if arch_var is None else space.from_indices(arch_var.numpy())
            )
        try:
            if self.calib_mode == "ema":
                self.reset_bn()
                used = int(self._ema_fn(iter(ds.take(n))).numpy())
            else:
                used = int(self._calib_fn(iter(ds.take(n))).numpy())
        finally:
            control.momentum.assign(control.default)
        if used == 0:
            raise ValueError("the calibration data set yielded no batch; BN statistics unchanged")
        return used

    def evaluate(self, holdout_ds: Data | None = None, index: int | None = None) -> float:
        """Top-1 accuracy of the current path (inference mode) on every batch of the data
        (``holdout_ds``, default the constructor's; ``index``: the candidate's index, for data
        given as a function of it). As a by-product, :attr:`last_log_likelihood` becomes the
        mean log-probability of the true class over the same images (minus the mean
        cross-entropy of the logits; 0 is perfect), a finer-grained score than the accuracy.

        Raises:
          ValueError: no held-out data, or it is empty; per-candidate data without ``index``.
        """
        ds = self.holdout_ds if holdout_ds is None else holdout_ds
        if ds is None:
            raise ValueError("no held-out data: pass holdout_ds here or to PathEvaluator()")
        ds = _for_candidate(ds, index, "held-out")
        if self.calib_mode == "batch_stats":
            control = self.model.bn_control
            control.batch_stats = True  # read while _eval_bs_fn traces (see BNControl)
            try:
                result = self._eval_bs_fn(iter(ds))
            finally:
                control.batch_stats = False
        else:
            result = self._eval_fn(iter(ds))
        correct, count = (int(v.numpy()) for v in result[:2])
        if count == 0:
            raise ValueError("the held-out data set is empty")
        self.last_log_likelihood = -float(result[2].numpy()) / count
        return correct / count

    def __call__(self, arch, index: int | None = None) -> float:
        """Fitness of ``arch``: set the path, recalibrate BN, return held-out top-1 accuracy (with
        a ``finetuner``: train the path alone first, restore every variable after scoring).

        Args:
          arch: an :class:`~spos_tf.spaces.space.Architecture` of the supernet's space.
          index: the candidate's index (>= 0), which selects its images when the data is a
            function of it (:attr:`per_candidate`); ignored otherwise. A search passes the trial
            number. Default: :func:`spos_tf.spaces.space.arch_index` of ``arch``. That is the
            same for the same architecture in every run and does not depend on the order of
            the calls, so a caller that scores architectures outside a search (e.g.
            ``spos_tf.rank``) stays reproducible and resumable.

        Raises:
          TypeError: the model is not a supernet (no ``set_arch``).
          ValueError: ``arch`` is not in the space; missing data (see above); a negative
            ``index``.
        """
        if not hasattr(self.model, "set_arch"):
            raise TypeError(
                f"{type(self.model).__name__} is not a supernet; call recalibrate() "
                f"and evaluate() on a stand-alone network"
            )
        if self.per_candidate and index is None:
            from spos_tf.spaces.space import arch_index

            index = arch_index(arch)
        self.model.set_arch(arch)
        if self.finetuner is None:
            self.recalibrate(index=index)
            return self.evaluate(index=index)
        with self.finetuner.applied(arch, _for_candidate(self.finetune_ds, index, "fine-tuning")):
            self.recalibrate(index=index)
            return self.evaluate(index=index)


def _is_function(data) -> bool:
    return data is not None and not isinstance(data, tf.data.Dataset) and callable(data)


def _for_candidate(data, index, what: str) -> tf.data.Dataset:
    """``data``, or ``data(index)`` when it is a function of the candidate's index."""
    if not _is_function(data):
        return data
    if index is None:
        raise ValueError(
            f"the {what} data gives each candidate its own images (--calib_stream=fresh or "
            f"--holdout_images_per_candidate): pass the candidate's index, e.g. "
            f"evaluator(arch, index=k)"
        )
    from spos_tf.spaces.space import check_index

    return data(check_index(index))


def _check_batches(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of calibration batches must be an int >= 1, got {n!r}")
    return n


def batches_for(images: int, batch_size: int) -> int:
    """Calibration batches needed to see ``images`` images: ``ceil(images / batch_size)``."""
    return max(1, math.ceil(images / batch_size))


def evaluator_for(model) -> PathEvaluator:
    """The :class:`PathEvaluator` cached on ``model`` (created on first use), so that repeated
    :func:`recalibrate_bn` / :func:`evaluate_path` calls reuse its traces."""
    evaluator = model.__dict__.get(_CACHE_ATTR)
    if evaluator is None:
        evaluator = PathEvaluator(model)
        # Bypass Keras attribute tracking: the evaluator is not part of the model's state.
        object.__setattr__(model, _CACHE_ATTR, evaluator)
    return evaluator


def recalibrate_bn(model, calib_batches: tf.data.Dataset, num_batches: int) -> int:
    """Exact BN statistics of ``model``'s current path on the first ``num_batches`` batches.

    Works for a supernet (the path in ``arch_var``) and a stand-alone network. Returns the number
    of batches used (fewer than ``num_batches`` if the data ran out). See the module docstring.
    """
    return evaluator_for(model).recalibrate(calib_batches, num_batches)


def evaluate_path(
    supernet, arch, calib_ds: tf.data.Dataset, holdout_ds: tf.data.Dataset, num_calib_batches: int
) -> float:
    """Sets ``arch`` in ``supernet``, recalibrates its BN on ``num_calib_batches`` batches of
    ``calib_ds`` and returns its top-1 accuracy on ``holdout_ds``."""
    evaluator = evaluator_for(supernet)
    supernet.set_arch(arch)
    evaluator.recalibrate(calib_ds, num_calib_batches)
    return evaluator.evaluate(holdout_ds)
