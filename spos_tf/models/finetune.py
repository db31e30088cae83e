"""Brief per-candidate fine-tuning before scoring (``spos_tf.search`` / ``spos_tf.rank``
``--finetune_steps``): a path trains alone for a few steps from its inherited weights, is scored,
and every weight goes back.

Weight sharing makes a path's inherited weights a compromise between all the paths that share
them. A few steps of the path alone move its weights towards its own optimum, so the score after
them may rank paths more like their stand-alone training does (the intuition behind
fine-tuning the finalists of a one-shot search; here every scored candidate gets the same short
budget). It is still the supernet's estimate, no prior is added, and it costs training steps per
candidate.

:class:`PathFinetuner` runs :func:`spos_tf.models.step.train_step` (the one train step) with a
sampler that always returns the candidate (a one-path
:class:`~spos_tf.models.sampling.SequenceSampler`), a masked SGD with momentum and no weight decay
(zeroed slots for every candidate), on the given batches of training images; then the caller
recalibrates BN and evaluates; then :meth:`PathFinetuner.restore` assigns every variable of the
model (weights, BN statistics, quantizer state) its value from before, bit for bit. The supernet's
own sampler comes back too. One trace serves every candidate (the path is read from
``model.arch_var`` and from the host sampler at run time).

Cost: ``steps`` forward and backward passes of the path at the batch size of the data, one
assign per model variable to restore, and a second copy of the model's variables in memory.
"""

from __future__ import annotations

import contextlib

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf.models import step as step_lib
from spos_tf.models.optim import MaskedSGD
from spos_tf.models.sampling import SequenceSampler


def _mean_cross_entropy(labels, logits):
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
    return tf.reduce_mean(loss)


class PathFinetuner:
    """Trains one path of a supernet alone for a fixed number of steps, then restores the model.

    Args:
      model: a :class:`~spos_tf.models.supernet.Supernet` (its variables are snapshotted on the
        first call: restore returns them to the values they had then).
      steps: training steps per candidate (>= 1); each uses one batch of the data, so the data
        should yield at least ``steps`` batches (fewer: fewer steps, see :meth:`train`).
      learning_rate: constant SGD rate of the fine-tuning.
      momentum: SGD momentum (PyTorch form, as the supernet's); the slots start at zero for every
        candidate.

    Raises:
      TypeError: ``model`` is not a supernet.
      ValueError: ``steps`` < 1 or ``learning_rate`` <= 0.
    """

    def __init__(self, model, steps: int, learning_rate: float, momentum: float = 0.9):
        if not step_lib.is_supernet(model):
            raise TypeError(f"{type(model).__name__} is not a supernet: nothing to fine-tune")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"--finetune_steps must be an int >= 1 here, got {steps!r}")
        if not learning_rate > 0:
            raise ValueError(f"--finetune_lr must be > 0, got {learning_rate!r}")
        self.model, self.steps = model, steps
        self.optimizer = MaskedSGD(learning_rate, momentum=momentum, weight_decay=0.0)
        self.optimizer.bind(model)
        self._backup = None
        self._train_fn = tf.function(self._train_loop)
        self._restore_fn = tf.function(self._restore)

    def _train_loop(self, iterator):
        count = tf.constant(0, tf.int32)
        for images, labels in iterator:
            step_lib.train_step(self.model, self.optimizer, _mean_cross_entropy, images, labels)
            count += 1
        return count

    def _restore(self):
        for var, saved in zip(self.model.variables, self._backup):
            var.assign(saved)
        for var in self.optimizer.variables:
            var.assign(tf.zeros_like(var))

    def _snapshot(self) -> None:
        self.optimizer.build(self.model.trainable_variables)
        self._backup = [
            tf.Variable(v.read_value(), trainable=False, name="finetune_backup")
            for v in self.model.variables
        ]

    @property
    def traces(self) -> int:
        """Number of traces of the training loop so far (1 after any number of candidates)."""
        return self._train_fn.experimental_get_tracing_count()

    def train(self, arch, data: tf.data.Dataset) -> int:
        """Sets ``arch`` and trains it alone on the first ``steps`` batches of ``data``
        (``(images, labels)``); returns the steps run (fewer if ``data`` ran out). Call
        :meth:`restore` afterwards (or use :meth:`applied`).

        Raises:
          ValueError: ``data`` yielded no batch (the model is unchanged).
        """
        if self._backup is None:
            self._snapshot()
        model = self.model
        model.set_arch(arch)
        sampler = model.sampler
        model.sampler = SequenceSampler(model.space, [arch])  # every step: ``arch``
        try:
            ran = int(self._train_fn(iter(data.take(self.steps))).numpy())
        finally:
            model.sampler = sampler
        if ran == 0:
            raise ValueError("the fine-tuning data yielded no batch; nothing was trained")
        return ran  # each step assigned ``arch`` to model.arch_var, so the path is still set

    def restore(self) -> None:
        """Every model variable back to its value before the first :meth:`train` (bit for bit),
        the optimizer's slots and step counter to zero."""
        if self._backup is not None:
            self._restore_fn()

    @contextlib.contextmanager
    def applied(self, arch, data: tf.data.Dataset):
        """``with finetuner.applied(arch, data): score()``: trains ``arch`` (see :meth:`train`),
        and restores the model when the block exits, also on an error."""
        try:
            yield self.train(arch, data)
        finally:
            self.restore()
