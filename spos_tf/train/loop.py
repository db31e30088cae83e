"""The training run: :func:`run` trains the supernet by single-path uniform sampling, or one
stand-alone architecture from scratch, as a :class:`~spos_tf.train.config.TrainConfig` says.

What a run does: resolve the config against the data set (image size and number of classes
default to the data set's), check the workdir (a different config is refused unless
``overwrite``), build the model under the strategy's scope, restore the latest checkpoint if any,
then loop ``steps`` times over one traced step (:func:`spos_tf.models.step.train_step`: sample
the path of ``(seed, step)``, forward, backward, masked update), logging
(:mod:`spos_tf.train.metrics`), evaluating (:mod:`spos_tf.train.eval`) and checkpointing on the
host between steps.

Determinism: a run is a function of its config. The architecture of step ``t`` is
``ArchSampler(space, seed)(t)`` (``CostBinSampler(space, seed, bins)(t)`` with
``sampling="cost_bins"``), dropout masks are stateless functions of ``(seed, t, replica)``,
and the input iterator is saved in every checkpoint, so a killed and restarted run ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import sys
import time

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from spos_tf.runs import run_dir
from spos_tf.spaces.archs_file import archs_record
from spos_tf.models import step as step_lib
from spos_tf.data import build_dataset
from spos_tf.runs.progress import ProgressBar
from spos_tf.runs.strategy import make_strategy, task_of, workers_of
from spos_tf.train.config import NEUTRAL_FIELDS, ConfigError, TrainConfig, resolve
from spos_tf.train.eval import Evaluator
from spos_tf.train.metrics import MetricsWindow, TensorBoard, path_macs
from spos_tf.train.recipe import (
    SmoothedSparseCE,
    complexity_aware_weight,
    make_dropout_deterministic,
    make_optimizer,
    make_schedule,
)


class DivergenceError(RuntimeError):
    """The loss or the weights became NaN/Inf; the last good checkpoint is kept."""


def run(
    config: TrainConfig,
    *,
    flags_text: str | None = None,
    stream=None,
    init_checkpoint: str | None = None,
    strategy=None,
) -> dict:
    """Trains as ``config`` says, in ``config.workdir``; returns the final evaluation record.

    Resumes from the workdir's latest checkpoint when it holds a run of the same config. Bad
    input is reported before anything is written.

    Args:
      config: the run's config (validated here).
      flags_text: written to ``<workdir>/flags.txt`` (the app passes the effective flags).
      stream: where the progress bar and the summary go (default stdout).
      init_checkpoint: a run that has no checkpoint of its own yet first reads its model's
        weights and BN statistics from this checkpoint (a few-shot sub-supernet starts from the
        one-shot supernet); the optimizer state (slots, step) stays fresh. Default: the
        checkpoint of ``config.init_from`` (:mod:`spos_tf.train.init`), if set.
      strategy: the ``tf.distribute`` strategy to train in (default: made from
        ``config.strategy``; :mod:`spos_tf.train.few_shot` makes one for all its sub-supernets).

    A config with ``few_shot_split`` (and no ``few_shot_choice``) trains the few-shot split
    instead: :func:`spos_tf.train.few_shot.train` (one such run per sub-supernet; returns a summary).

    Returns:
      The last ``metrics.jsonl`` record: ``{"step", "val_accuracy", ...}``.

    Raises:
      ConfigError (a ValueError): bad config, space, op, architecture, data config or MACs range.
      FileNotFoundError: data set missing (the message says what to put where).
      run_dir.RunDirError (a ValueError): workdir of a different config, damaged run;
        run_dir.CheckpointError: damaged checkpoint.
      DivergenceError: the loss or weights became NaN/Inf (the last good checkpoint is kept).
    """
    from spos_tf.train import few_shot

    if config.few_shot_split is not None and config.few_shot_choice is None:
        return few_shot.train(config, flags_text=flags_text, stream=stream)
    try:
        config.validate()
        if few_shot.is_few_shot(config.workdir):
            raise run_dir.RunDirError(
                f"--workdir={os.fspath(config.workdir)!r} holds a few-shot split "
                f"({few_shot.FEW_SHOT_FILE}); train this run into another --workdir"
            )
        if strategy is None:  # MultiWorkerMirroredStrategy must come first
            strategy = make_strategy(config.strategy)
        resolved = resolve(config)
        config = resolved.config
        replicas = strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(
                f"--batch_size={config.batch_size} is not divisible by the "
                f"{replicas} replicas of --strategy={config.strategy}"
            )
        chief, task = task_of(strategy)
        status = run_dir.check_workdir(
            os.fspath(config.workdir),
            config.to_dict(),
            overwrite=config.overwrite,
            neutral=NEUTRAL_FIELDS,
            defaults=TrainConfig().to_dict(),
        )
        if config.init_from is not None and init_checkpoint is None:
            from spos_tf.train import init as warm_start

            init_checkpoint = warm_start.checkpoint(config, resolved.space, status)
        if config.sample_from is not None and status == "resume":
            _check_sample_from(config, resolved.sampler)
    except run_dir.RunDirError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e
    from spos_tf.models import precision
    from spos_tf.runs.determinism import reproducible_graphs

    # the models are built in the policy scope; every step function is traced and first run
    # inside reproducible_graphs
    with precision.policy_scope(config.precision), reproducible_graphs(config.deterministic):
        return _Run(
            strategy, resolved, chief, task, status, flags_text, stream, init_checkpoint
        ).train()


def _sample_from_record(config, sampler) -> tuple:
    """``(path, record)``: where a ``--sample_from`` run records the architectures it trains
    (``<workdir>/sample_from.json``, written at the first start) and what it records."""
    path = os.path.join(os.fspath(config.workdir), run_dir.SAMPLE_FROM_FILE)
    return path, archs_record(config.sample_from, sampler.archs)


def _check_sample_from(config, sampler) -> None:
    """A resumed ``--sample_from`` run must train the architectures it started with; raises
    ValueError naming the fix otherwise."""
    recorded, record = _sample_from_record(config, sampler)
    if not os.path.isfile(recorded):
        return
    started = run_dir.read_settings(recorded)["archs"]
    if started != record["archs"]:
        raise ValueError(
            f"--sample_from={config.sample_from} now lists other architectures than this run "
            f"started with ({recorded}: {len(started)}); restore the file to resume, or pass "
            "--overwrite to start the run again"
        )


class _Run:
    """One training run (the state that :func:`run` threads through its phases)."""

    def __init__(
        self, strategy, resolved, chief, task, status, flags_text, stream, init_checkpoint=None
    ):
        self.strategy, self.resolved, self.config = strategy, resolved, resolved.config
        self.space, self.chief, self.task, self.status = resolved.space, chief, task, status
        self.workdir = os.fspath(self.config.workdir)
        self.stream = stream
        self.init_checkpoint = init_checkpoint  # see run()
        config = self.config
        self.flags_text = flags_text
        if chief and status != "resume":  # a resumed run rewrites it once its checkpoint loaded
            if status == "overwrite":
                run_dir.clear(self.workdir)
            run_dir.write_config(self.workdir, config.to_dict(), flags_text)
            if config.init_from is not None and init_checkpoint is not None:
                from spos_tf.train import init as warm_start

                warm_start.record(self.workdir, init_checkpoint)
            if config.sample_from is not None:
                run_dir.atomic_write_json(*_sample_from_record(config, resolved.sampler))
        self.metrics = run_dir.MetricsLog(self.workdir, enabled=chief)

        with strategy.scope():
            self.model = run_dir.build_model(config.to_dict(), self.space)
            self.optimizer = make_optimizer(config)
            if config.is_supernet:
                self.optimizer.bind(self.model)
                self.model.set_sampler(resolved.sampler)
            self.optimizer.build(self.model.trainable_variables)
            self.final_bn = tf.Variable(0, dtype=tf.int64, trainable=False, name="final_bn_done")
        iterations = self.optimizer.iterations
        make_dropout_deterministic(
            self.model, lambda: tf.convert_to_tensor(iterations), config.seed
        )

        # One plain tf.data iterator per worker, yielding this worker's share of the global batch;
        # the train step splits it between the worker's replicas. Unlike tf.distribute's
        # distributed iterators (not trackable in TF 2.21), it can be saved in the checkpoint,
        # so a resumed run reads exactly the batches an uninterrupted one would.
        num_workers, worker = workers_of(strategy)
        context = None
        if num_workers > 1:
            context = tf.distribute.InputContext(
                num_input_pipelines=num_workers,
                input_pipeline_id=worker,
                num_replicas_in_sync=num_workers,
            )
        ds = build_dataset(
            config.data,
            "train",
            config.batch_size,
            training=True,
            seed=config.seed,
            input_context=context,
        )
        if not config.data.cache:  # checkpoint the iterator's position, not its buffers
            options = tf.data.Options()
            options.experimental_symbolic_checkpoint = True
            ds = ds.with_options(options)
        self.local_replicas = strategy.num_replicas_in_sync // num_workers
        self.local_batch = config.batch_size // num_workers
        self.iterator = iter(ds)
        # A tf.data service iterator cannot be saved (TF 2.21: "SaveInternal is not yet
        # supported"): with --data_service a resumed run starts a new stream.
        saved_data = {} if config.data.data_service else {"data": self.iterator}
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, final_bn=self.final_bn, **saved_data
        )
        self.ckpt_dir = run_dir.checkpoint_dir(self.workdir, task)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.ckpt_dir, max_to_keep=config.keep_checkpoints
        )
        self.tb = None
        self._train_step = self._make_train_step()

    # ------------------------------------------------------------------ steps
    def _make_train_step(self):
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        supernet, global_batch = self.config.is_supernet, self.config.batch_size
        loss_fn = SmoothedSparseCE(
            self.space.num_classes,
            self.config.label_smoothing,
            reduction=keras.losses.Reduction.NONE,
        )
        fixed_macs = 0.0 if supernet else path_macs(self.space, self.resolved.arch)
        loss_weight = None
        if self.config.lr_schedule == "complexity_aware":  # DYNAS's CaLR, per sampled path
            loss_weight = complexity_aware_weight(self.config, self.space)
        tvars = model.trainable_variables

        def step_loss(labels, logits):  # per replica: summed over its examples / global batch
            return tf.reduce_sum(loss_fn(labels, logits)) / global_batch

        def step_fn(images, labels):
            out = step_lib.train_step(
                model, optimizer, step_loss, images, labels, fixed_macs, loss_weight
            )
            bad = 1.0 - tf.cast(out.finite, tf.float32)  # summed over replicas: > 0 if any is bad
            correct = tf.reduce_sum(
                tf.cast(
                    tf.equal(tf.argmax(out.logits, -1, output_type=tf.int32), labels), tf.float32
                )
            )
            return out.loss, correct, bad, out.macs

        local_replicas = self.local_replicas
        per_replica = self.local_batch // local_replicas

        def split(batch):  # this worker's batch -> one contiguous slice per local replica
            if strategy.num_replicas_in_sync == 1:
                return batch

            def value_fn(context):
                j = context.replica_id_in_sync_group % local_replicas
                return batch[j * per_replica : (j + 1) * per_replica]

            return strategy.experimental_distribute_values_from_function(value_fn)

        @tf.function
        def train_step(iterator):
            images, labels = next(iterator)
            loss, correct, bad, macs = strategy.run(step_fn, args=(split(images), split(labels)))
            sum_ = tf.distribute.ReduceOp.SUM
            return (
                strategy.reduce(sum_, loss, None),
                strategy.reduce(sum_, correct, None),
                strategy.reduce(sum_, bad, None),
                strategy.reduce(tf.distribute.ReduceOp.MEAN, macs, None),
            )

        @tf.function
        def weights_finite():
            return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in tvars])

        self._weights_finite = weights_finite
        return train_step

    def _restore(self) -> int:
        """Restores this task's latest checkpoint when the run resumes; returns the step."""
        step, path = 0, None
        if self.status == "resume":
            path = run_dir.latest_checkpoint(self.ckpt_dir)
            if path is not None:
                run_dir.read_checkpoint(self.checkpoint, path)
                step = int(self.optimizer.iterations.numpy())
        if path is None and self.init_checkpoint:  # model and BN statistics; optimizer fresh
            run_dir.read_checkpoint(
                tf.train.Checkpoint(model=self.model), self.init_checkpoint, partial=True
            )
        if self.config.strategy == "multi_worker":
            self._check_same_step(step)  # a collective: every worker runs it
        return step

    def _check_same_step(self, step: int) -> None:
        value = tf.constant([float(step)])
        steps = self.strategy.gather(self.strategy.run(lambda: tf.identity(value)), axis=0)
        low, high = float(tf.reduce_min(steps)), float(tf.reduce_max(steps))
        if low != high:
            raise run_dir.CheckpointError(
                f"workers restored different steps ({int(low)} .. {int(high)}): their checkpoint "
                f"folders under {self.workdir} disagree. Delete the newer checkpoints so that "
                f"every worker has the same latest step, or pass --overwrite"
            )

    def _save(self, step: int) -> None:
        if not bool(self._weights_finite()):
            self._diverged(step, "the weights contain NaN/Inf")
        self.manager.save(checkpoint_number=step)

    def _diverged(self, step: int, what: str):
        kept = self.manager.latest_checkpoint
        keep = (
            f"the last good checkpoint {kept} is kept; a rerun with the same flags resumes "
            f"from it and diverges again at the same step"
            if kept
            else "no checkpoint had been written yet"
        )
        raise DivergenceError(
            f"training diverged at step {step}: {what}. Training stopped; {keep}. Fix: lower "
            f"--learning_rate (now {self.config.learning_rate:g}) or check the input data, and "
            f"start over with --overwrite or a new --workdir"
        )

    def _print(self, text: str) -> None:
        if self.chief:
            stream = self.stream or sys.stdout
            stream.write(text + "\n")
            stream.flush()

    # ------------------------------------------------------------------ loop
    def _evaluator(self) -> Evaluator:
        if self._eval is None:
            self._eval = Evaluator(self.resolved, self.strategy)
        return self._eval

    def train(self) -> dict:
        """Trains to ``config.steps``, then runs the final BN pass (if any) and the final
        evaluation (chief only: evaluation needs no collective ops). Returns the final record
        (``{}`` on non-chief workers)."""
        config = self.config
        self._eval = None
        start = self._restore()
        if self.chief and self.status == "resume":  # neutral fields (e.g. workdir) may differ
            run_dir.write_config(self.workdir, config.to_dict(), self.flags_text)
            self.metrics.truncate_after(start)
        finished = start >= config.steps and (
            not config.final_bn_batches or int(self.final_bn.numpy())
        )
        if finished:
            records = self.metrics.read() if self.chief else []
            if records and records[-1].get("final"):
                self._print(
                    f"{self.workdir}: already trained for {config.steps} steps; final "
                    f"val_accuracy {records[-1]['val_accuracy']:.4f}"
                )
                return records[-1]
        kind = "supernet" if config.is_supernet else f"stand-alone network {config.arch}"
        self._print(
            f"{'Resuming' if start else 'Training'} the {kind} of space "
            f"{self.space.name} ({self.space.num_blocks} choice blocks) at step "
            f"{start}/{config.steps}, global batch {config.batch_size} on "
            f"{self.strategy.num_replicas_in_sync} replica(s); workdir {self.workdir}"
        )
        self.tb = TensorBoard(os.path.join(self.workdir, run_dir.TB_DIR), enabled=self.chief)
        try:
            step = self._loop(start)
            if config.final_bn_batches and not int(self.final_bn.numpy()):
                used = self._evaluator().final_bn_pass(self.model, config.final_bn_batches)
                self.final_bn.assign(1)
                self._save(step)
                images = "augmented" if config.final_bn_augment else "un-augmented"
                self._print(
                    f"Recomputed exact BN statistics on {used} batches (learning rate 0, "
                    f"{images} training images)."
                )
            return self._evaluate(step, final=True) if self.chief else {}
        finally:
            self.tb.close()

    def _loop(self, start: int) -> int:
        config = self.config
        bar = ProgressBar(
            config.steps, initial=start, stream=self.stream, enabled=self.chief and config.progress
        )
        window = MetricsWindow(self.resolved, make_schedule(config))
        step = start
        try:
            while step < config.steps:
                loss, correct, bad, macs = self._train_step(self.iterator)
                step += 1
                loss, correct, macs = float(loss), float(correct), float(macs)
                if float(bad) > 0.0:
                    bar.close()
                    self._diverged(
                        step,
                        f"the loss is {loss}"
                        if not math.isfinite(loss)
                        else f"the gradients contain NaN/Inf (loss {loss:.4g})",
                    )
                window.add(step, loss, correct, macs)
                bar.update(step, loss=loss, acc=correct / config.batch_size, MMACs=macs / 1e6)
                if step % config.log_every == 0 or step == config.steps:
                    record = window.record(step)
                    self.metrics.append(record)
                    self.tb.write(
                        step,
                        {k: record[k] for k in ("loss", "accuracy", "learning_rate", "arch_macs")},
                    )
                if step % config.checkpoint_every == 0 or step == config.steps:
                    self._save(step)
                if (
                    self.chief
                    and config.eval_every
                    and step % config.eval_every == 0
                    and step < config.steps
                ):
                    bar.close()
                    self._evaluate(step, final=False)
        finally:
            bar.close()
        return step

    def _evaluate(self, step: int, final: bool) -> dict:
        start = time.monotonic()
        evaluator = self._evaluator()
        record = {"step": step, **evaluator.evaluate(self.model)}
        if final:
            record["final"] = True
        record["eval_seconds"] = time.monotonic() - start
        self.metrics.append(record)
        self.tb.write(step, {"val_accuracy": record["val_accuracy"]})
        split = "held-out" if self.config.eval_split == "holdout" else "test"
        when = f"Final (step {step})" if final else f"Step {step}"
        if self.config.is_supernet:
            self._print(
                f"{when} {split} accuracy of {len(evaluator.paths)} random paths (BN "
                f"recalibrated per path): mean {record['val_accuracy']:.4f} (min "
                f"{record['val_accuracy_min']:.4f}, max {record['val_accuracy_max']:.4f})"
            )
        else:
            self._print(
                f"{when} {split} accuracy of {self.config.arch}: {record['val_accuracy']:.4f}"
            )
        return record
