"""Evaluation during and at the end of a training run, on a non-distributed twin of the model.

For the supernet, ``val_accuracy`` is the mean held-out accuracy of ``eval_paths`` random paths
(drawn as ``ArchSampler(space, seed)(EVAL_STEP_OFFSET + i)``, the same paths at every evaluation
and with either sampling), each after an exact recalibration of its BN statistics; for a
stand-alone network, its accuracy with its own BN statistics. The training state is never touched
(the twin receives a copy of the weights).
"""

from __future__ import annotations

import numpy as np
import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from spos_tf.runs import run_dir
from spos_tf.data import build_dataset
from spos_tf.train.metrics import path_macs

# Evaluation paths are ArchSampler(space, seed)(EVAL_STEP_OFFSET + i): far from any training step.
EVAL_STEP_OFFSET = 2**40


class Evaluator:
    """Evaluates the model of a run on a non-distributed twin (the training state is untouched).

    Supernet: each of ``eval_paths`` fixed random paths gets its BN statistics recalibrated
    exactly on the first ``config.num_calib_batches`` batches of ``eval_batch_size`` training
    images (``calib_images`` rounded up to whole batches; stored order, no augmentation: the same
    images for every path), then its top-1 accuracy on ``eval_split``; the evaluation record holds
    that batch count (``calib_batches``). Stand-alone: top-1 accuracy with the
    model's own BN statistics. Uses :class:`spos_tf.models.evaluate.PathEvaluator` (two traces in all).

    Args:
      resolved: the run's :class:`~spos_tf.train.config.Resolved` config.
      strategy: the run's strategy (the model's weights are read from this worker's first
        replica); default: the current one.
    """

    def __init__(self, resolved, strategy=None):
        from spos_tf.models.evaluate import PathEvaluator

        config = resolved.config
        self.config, self.space = config, resolved.space
        self.strategy = strategy or tf.distribute.get_strategy()
        self.supernet = config.is_supernet
        with tf.distribute.get_strategy().scope():
            self.twin = run_dir.build_model(config.to_dict(), resolved.space)
        self.calib = build_dataset(
            config.data,
            "calib",
            config.eval_batch_size,
            training=False,
            seed=config.seed,
            repeat=False,
        )
        val = build_dataset(
            config.data,
            config.eval_split,
            config.eval_batch_size,
            training=False,
            seed=config.seed,
            repeat=False,
        )
        self.val = val.take(config.eval_batches) if config.eval_batches else val
        if self.supernet:
            sampler = resolved.eval_sampler or resolved.sampler
            self.paths = [sampler(EVAL_STEP_OFFSET + i) for i in range(config.eval_paths)]
        else:
            self.paths = [resolved.arch]
        self.path_evaluator = PathEvaluator(
            self.twin, self.calib, self.val, config.num_calib_batches
        )

    def _local(self, model) -> list:
        """``model``'s weights as numpy, each read from this worker's first replica: no
        collective op, so one worker can evaluate alone (a replica's own BN statistics stand in
        for the replicas' mean)."""
        return [self.strategy.experimental_local_results(v)[0].numpy() for v in model.weights]

    def sync_from(self, model) -> None:
        """Copies every weight (BN statistics included) of ``model`` into the twin."""
        self.twin.set_weights(self._local(model))

    def evaluate(self, model) -> dict:
        """Evaluation record: ``val_accuracy`` (for the supernet the mean over the paths, with
        min, max and per path its text, MACs and accuracy)."""
        self.sync_from(model)
        results = []
        for arch in self.paths:
            accuracy = (
                self.path_evaluator(arch) if self.supernet else self.path_evaluator.evaluate()
            )
            results.append(
                {"arch": str(arch), "macs": path_macs(self.space, arch), "accuracy": accuracy}
            )
        accs = [r["accuracy"] for r in results]
        record = {"val_accuracy": float(np.mean(accs)), "eval_split": self.config.eval_split}
        if self.supernet:
            record.update(
                val_accuracy_min=float(min(accs)),
                val_accuracy_max=float(max(accs)),
                val_paths=results,
                bn_recalibrated=True,
                calib_batches=self.config.num_calib_batches,
            )
        return record

    def final_bn_pass(self, model, num_batches: int) -> int:
        """Stand-alone: exact BN statistics on ``num_batches`` calibration batches (augmented
        with ``config.final_bn_augment``), written back to ``model`` (the weights do not change:
        the learning rate is 0 for this pass). Cost: ``num_batches`` training-mode forward passes
        of ``eval_batch_size`` images on one device."""
        self.sync_from(model)
        calib = self.calib
        if self.config.final_bn_augment:
            calib = build_dataset(
                self.config.data,
                "calib",
                self.config.eval_batch_size,
                training=False,
                augment=True,
                seed=self.config.seed,
                repeat=True,
                drop_remainder=True,
            )
        used = self.path_evaluator.recalibrate(calib, num_batches)
        model.set_weights(self.twin.get_weights())
        return used
