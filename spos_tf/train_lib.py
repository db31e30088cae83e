"""Training: the supernet by single-path uniform sampling, or one stand-alone architecture from
scratch (the retraining step). ``spos_tf.train`` is the command line; this module is the library.

Example::

    config = TrainConfig(workdir="/tmp/qs", space="shufflenet_oneshot",
                         space_overrides={"image_size": 16, "width": 0.25, "repeats": (1, 1, 2, 1)},
                         steps=600, batch_size=64, optimizer="adam", learning_rate=3e-3)
    final_record = run(config)

What a run does (see :func:`run`): resolve the config against the data set (image size and number
of classes default to the data set's), check the workdir (a different config is refused unless
``overwrite``), build the model under the strategy's scope, restore the latest checkpoint if any,
then loop ``steps`` times over one traced step (sample the path of ``(seed, step)``, forward,
backward, masked update), logging, evaluating and checkpointing on the host between steps.

Determinism: a run is a function of its config. The architecture of step ``t`` is
``ArchSampler(space, seed)(t)`` (``CostBinSampler(space, seed, bins)(t)`` with
``sampling="cost_bins"``), dropout masks are stateless functions of ``(seed, t, replica)``,
and the input iterator is saved in every checkpoint, so a killed and restarted run ends with the
same weights as an uninterrupted one.

Evaluation never touches the training state: it runs on a non-distributed twin of the model that
receives a copy of the weights. For the supernet, ``val_accuracy`` is the mean held-out accuracy
of ``eval_paths`` random paths (drawn as ``ArchSampler(space, seed)(2**40 + i)``, the same paths at
every evaluation and with either sampling), each after an exact recalibration of its BN statistics.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Optional

import numpy as np
import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from spos_tf import costs as costs_lib
from spos_tf import precision, run_dir, spaces
from spos_tf import train_step as step_lib
from spos_tf.data import DataConfig, build_dataset, dataset_info
from spos_tf.data import resolve as resolve_data
from spos_tf.progress import ProgressBar
from spos_tf.sampling import (REFERENCE_BINS, ArchSampler, CostBinSampler, all_of, bin_index,
                              check_bins, latency_range, macs_range)
from spos_tf.space import Architecture, SearchSpace, arch_from_any

STRATEGIES = ("default", "mirrored", "multi_worker")
OPTIMIZERS = ("sgd", "adam")
SAMPLINGS = ("uniform", "cost_bins")
LR_SCHEDULES = ("linear", "cosine", "constant")
EVAL_SPLITS = ("holdout", "test")
# Fields that do not change a run's result: a workdir may be resumed with other values for them.
NEUTRAL_FIELDS = ("workdir", "overwrite", "progress", "checkpoint_every", "keep_checkpoints",
                  "log_every", "eval_every", "data.data_dir", "data.manual_dir")
# Evaluation paths are ArchSampler(space, seed)(EVAL_STEP_OFFSET + i): far from any training step.
EVAL_STEP_OFFSET = 2 ** 40


class ConfigError(ValueError):
    """Bad input found before anything was written (config, space, architecture, data)."""


class DivergenceError(RuntimeError):
    """The loss or the weights became NaN/Inf; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------------- config
def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"--{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(name, value, low, high=math.inf, low_open=False, high_open=True):
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.floating))
          and math.isfinite(value) and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        interval = (("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]"))
        raise ValueError(f"--{name} must be a number in {interval}, got {value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"--{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults are the paper's ImageNet supernet recipe.

    Attributes:
      workdir: run directory (see :mod:`spos_tf.run_dir`).
      overwrite: delete a previous run of a different config in ``workdir`` and start over.
      space: registered space name (``spos_tf.spaces.names()``).
      space_overrides: kwargs of ``spos_tf.spaces.get``; ``image_size`` and ``num_classes``
        default to the data set's (filled in by :func:`resolve`).
      arch: ``None`` trains the supernet; otherwise the architecture to retrain from scratch (its
        text form, or a path to a text/JSON file; :func:`resolve` stores the text form).
      uniform_bits: quantized spaces: retrain the uniform kWkA baseline, ``costs.uniform_arch(space,
        bits=k)`` (channel scale 1.0, k bits for weights and activations in every block; the
        first conv and last FC stay at 8 bits); :func:`resolve` turns it into ``arch``.
        Exclusive with ``arch``.
      seed: seeds the weights, the sampled paths, the data order and augmentation, and dropout.
      data: the input data (``spos_tf.data.DataConfig``); ``data.image_size`` follows the space.
      steps, batch_size: number of updates and the global batch (split across replicas).
      optimizer: ``"sgd"`` (PyTorch-form momentum, masked for the supernet) or ``"adam"``.
      learning_rate, lr_schedule: peak rate; ``"linear"`` decays per step to 0 at ``steps``
        (the paper), ``"cosine"`` likewise along a half cosine, ``"constant"`` keeps it.
      momentum: SGD momentum. weight_decay: L2 on conv/FC kernels only (sampled path only).
      label_smoothing: of the cross-entropy (0.1 in the paper).
      min_macs, max_macs: supernet only: sample only paths with MACs in this range.
      sampling: supernet only: ``"uniform"`` (the paper: every path equally likely per step) or
        ``"cost_bins"`` (the reference release's rule, :class:`~spos_tf.sampling.CostBinSampler`:
        a MACs bin uniformly, then up to ``bin_tries`` uniform draws inside it, else one
        unconstrained draw).
      cost_bins: MACs bin edges (increasing). ``cost_bins`` sampling draws among these bins
        (None: the reference's 290M..360M in 10M steps); with either sampling, when set, every
        metrics record holds ``path_bins`` (sampled paths per bin since the last record) and
        ``path_bins_outside``.
      bin_tries: ``cost_bins`` sampling: draws per step inside the chosen bin (the reference: 500).
      latency_table, min_latency_ms, max_latency_ms: supernet only: sample only paths whose
        latency predicted by this lookup table (``spos_tf.latency build``) is in this range.
      bn_momentum: BatchNorm moving-average momentum (Keras form; 0.9 = PyTorch's 0.1).
      strategy: ``"default"`` (one device), ``"mirrored"`` (all local GPUs, else all logical
        CPUs) or ``"multi_worker"`` (MultiWorkerMirroredStrategy, cluster from ``TF_CONFIG``).
      checkpoint_every, keep_checkpoints: checkpoint period (steps) and how many to keep.
      log_every: steps per metrics record (loss, accuracy, learning rate, path MACs).
      eval_every: steps between evaluations (0: only the final one).
      eval_paths: supernet: random paths averaged into ``val_accuracy``.
      eval_split: ``"holdout"`` (the search's held-out split) or ``"test"``; None (default):
        ``"holdout"`` for the supernet (what the search will score on), ``"test"`` for a
        stand-alone network (its final number on data the search never saw); :func:`resolve`
        stores the split used.
      eval_batch_size, eval_batches: evaluation batch size and batches (0: the whole split).
      calib_batches: supernet: BN recalibration batches per evaluated path (training images,
        no augmentation, exact cumulative average).
      final_bn_augment: the final BN pass reads training images through the training
        augmentation (as the reference's pass over ~1,250 x 1,024 augmented images; seeded by
        position, in stored order, repeated as needed); default: un-augmented training images.
      final_bn_batches: stand-alone only: after the last step, recompute exact BN statistics on
        this many batches with the learning rate at 0 (0: skip), saved with the final checkpoint.
      progress: show a progress bar.
      precision: ``"float32"``, ``"mixed_float16"`` (float16 compute, float32 variables, loss
        scaling) or ``"mixed_bfloat16"``: the Keras policy of the models, see
        :mod:`spos_tf.precision`.
    """

    workdir: str = ""
    overwrite: bool = False
    space: str = "shufflenet_oneshot"
    space_overrides: dict = dataclasses.field(default_factory=dict)
    arch: Optional[str] = None
    uniform_bits: Optional[int] = None
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    steps: int = 150_000
    batch_size: int = 1024
    optimizer: str = "sgd"
    learning_rate: float = 0.5
    lr_schedule: str = "linear"
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    min_macs: Optional[float] = None
    max_macs: Optional[float] = None
    sampling: str = "uniform"
    cost_bins: Optional[tuple] = None
    bin_tries: int = 500
    latency_table: Optional[str] = None
    min_latency_ms: Optional[float] = None
    max_latency_ms: Optional[float] = None
    bn_momentum: float = 0.9
    strategy: str = "default"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    eval_every: int = 0
    eval_paths: int = 10
    eval_split: Optional[str] = None
    eval_batch_size: int = 256
    eval_batches: int = 0
    calib_batches: int = 20
    final_bn_batches: int = 0
    final_bn_augment: bool = False
    progress: bool = True
    precision: str = "float32"

    @property
    def is_supernet(self) -> bool:
        return self.arch is None and self.uniform_bits is None

    def validate(self) -> "TrainConfig":
        """Checks every field without touching files or TensorFlow; returns ``self``.

        Raises:
          ValueError: naming the flag and quoting the bad value.
        """
        if not isinstance(self.workdir, (str, os.PathLike)) or not str(self.workdir).strip():
            raise ValueError("--workdir is required: the run directory for checkpoints and logs")
        if self.space not in spaces.names():
            raise ValueError(f"unknown search space --space={self.space!r}; registered: "
                             f"{', '.join(spaces.names())}")
        if not isinstance(self.space_overrides, dict):
            raise ValueError(f"space_overrides must be a dict, got {self.space_overrides!r}")
        if self.arch is not None and (not isinstance(self.arch, str) or not self.arch.strip()):
            raise ValueError(f"--arch must be an architecture text or a file path, got "
                             f"{self.arch!r}")
        if self.uniform_bits is not None:
            _check_int("uniform_bits", self.uniform_bits, 1)
            if self.arch is not None:
                raise ValueError(f"--uniform_bits={self.uniform_bits} retrains the uniform "
                                 f"{self.uniform_bits}W{self.uniform_bits}A network; drop it or "
                                 f"--arch={self.arch!r} (pass one of them)")
        _check_int("seed", self.seed, 0)
        if not isinstance(self.data, DataConfig):
            raise ValueError(f"data must be a spos_tf.data.DataConfig, got {self.data!r}")
        self.data.validate()
        _check_int("steps", self.steps, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_float("momentum", self.momentum, 0.0, 1.0)
        _check_float("weight_decay", self.weight_decay, 0.0)
        _check_float("label_smoothing", self.label_smoothing, 0.0, 1.0)
        for name in ("min_macs", "max_macs"):
            if getattr(self, name) is not None:
                _check_float(name, getattr(self, name), 0.0)
        if self.min_macs is not None and self.max_macs is not None \
                and self.min_macs > self.max_macs:
            raise ValueError(f"--min_macs={self.min_macs:g} is above --max_macs={self.max_macs:g}")
        if not self.is_supernet and (self.min_macs is not None or self.max_macs is not None):
            raise ValueError("--min_macs/--max_macs constrain supernet sampling; drop them when "
                             "retraining one architecture (--arch)")
        _check_choice("sampling", self.sampling, SAMPLINGS)
        _check_int("bin_tries", self.bin_tries, 1)
        if self.cost_bins is not None:
            check_bins(self.cost_bins)
        if not self.is_supernet and (self.sampling != "uniform" or self.cost_bins is not None):
            raise ValueError("--sampling/--cost_bins choose how the supernet samples paths; drop "
                             "them when retraining one architecture (--arch)")
        if self.sampling == "cost_bins" and (self.min_macs is not None
                                             or self.max_macs is not None):
            raise ValueError("--sampling=cost_bins draws MACs bins (--cost_bins) and cannot be "
                             "combined with --min_macs/--max_macs; set the bin edges instead")
        for name in ("min_latency_ms", "max_latency_ms"):
            if getattr(self, name) is not None:
                _check_float(name, getattr(self, name), 0.0)
                if not self.latency_table:
                    raise ValueError(f"--{name} needs --latency_table (python -m spos_tf.latency "
                                     f"build --space={self.space} --out=lut.json)")
        if self.latency_table is not None and not self.is_supernet:
            raise ValueError("--latency_table constrains supernet sampling; drop it when "
                             "retraining one architecture (--arch)")
        _check_float("bn_momentum", self.bn_momentum, 0.0, 1.0)
        _check_choice("strategy", self.strategy, STRATEGIES)
        for name in ("checkpoint_every", "keep_checkpoints", "log_every", "eval_paths",
                     "eval_batch_size", "calib_batches"):
            _check_int(name, getattr(self, name), 1)
        for name in ("eval_every", "eval_batches", "final_bn_batches"):
            _check_int(name, getattr(self, name), 0)
        if self.eval_split is not None:
            _check_choice("eval_split", self.eval_split, EVAL_SPLITS)
        if self.final_bn_augment and not self.final_bn_batches:
            raise ValueError("--final_bn_augment chooses the images of the final BN pass; set "
                             "--final_bn_batches (its length) too, or drop it")
        if self.final_bn_batches and self.is_supernet:
            raise ValueError("--final_bn_batches applies to retraining (--arch); the supernet's "
                             "BN statistics are recalibrated per path at evaluation and search")
        precision.check(self.precision)
        return self

    def to_dict(self) -> dict:
        """JSON-ready dict (the ``config.json`` of the workdir)."""
        d = dataclasses.asdict(self)
        d["workdir"] = os.fspath(self.workdir)
        return run_dir.normalized(d)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        if isinstance(d.get("data"), dict):
            d["data"] = DataConfig(**d["data"])
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A config resolved against its data: the effective config, space, architecture, sampler."""

    config: TrainConfig
    space: SearchSpace
    arch: Optional[Architecture]
    sampler: Optional[ArchSampler]
    num_examples: dict
    eval_sampler: Optional[ArchSampler] = None  # draws the evaluation paths (default: sampler)


def resolve(config: TrainConfig) -> Resolved:
    """Fills the data-dependent fields and checks everything that needs the data or the space.

    Opens the data set (``spos_digits`` is prepared in ``data.data_dir`` on first use); writes
    nothing else.

    Raises:
      ValueError: unknown space, op or override; bad architecture; infeasible MACs range;
        ``num_classes`` below the data set's; bad data config.
      FileNotFoundError: the data set is not prepared and cannot be (the message says how).
    """
    config = config.validate()
    data = resolve_data(config.data)
    info = dataset_info(data)
    overrides = dict(config.space_overrides)
    image_size = overrides.get("image_size") or data.image_size
    overrides["image_size"] = int(image_size)
    data = dataclasses.replace(data, image_size=int(image_size))
    num_classes = overrides.get("num_classes") or info.num_classes
    if num_classes < info.num_classes:
        raise ValueError(f"--num_classes={num_classes} is below the {info.num_classes} classes of "
                         f"data set {data.name!r}; drop --num_classes to use the data set's")
    overrides["num_classes"] = int(num_classes)
    space = spaces.get(config.space, **overrides)
    arch = sampler = None
    if config.uniform_bits is not None:
        if not space.quantized:
            raise ValueError(f"--uniform_bits needs a quantized space (e.g. "
                             f"resnet18_mixed_precision); {space.name!r} is a float space")
        arch = costs_lib.uniform_arch(space, bits=config.uniform_bits)
    elif config.arch is not None:
        try:
            arch = arch_from_any(space, config.arch)
        except (ValueError, OSError) as e:
            raise ValueError(
                f"bad --arch={config.arch!r}: {e}. --arch takes the text form of an architecture "
                f"of space {space.name!r} ({space.num_blocks} blocks, e.g. "
                f"{str(space.make(**{k: [0] * space.num_blocks for k in space.searched_genes}))!r})"
                f" or the path of a JSON file with an 'arch' field") from None
    else:
        constraint, description = None, ""
        if config.min_macs is not None or config.max_macs is not None:
            constraint = macs_range(space, config.min_macs, config.max_macs)
            description = (f"MACs in [{config.min_macs or 0:g}, "
                           f"{config.max_macs if config.max_macs is not None else math.inf:g}]")
        if config.min_latency_ms is not None or config.max_latency_ms is not None:
            constraint = all_of(constraint, latency_range(space, config.latency_table,
                                                          config.min_latency_ms,
                                                          config.max_latency_ms))
            description += (" and " if description else "") + (
                f"latency in [{config.min_latency_ms or 0:g}, "
                f"{config.max_latency_ms if config.max_latency_ms is not None else math.inf:g}]"
                f" ms")
        sampler = ArchSampler(space, config.seed, constraint, description=description)
        sampler(0)  # fails fast (InfeasibleConstraintError, a ValueError) on an empty range
        if config.sampling == "cost_bins":
            # evaluation paths stay uniform: the same paths whichever way training samples
            eval_sampler = sampler
            sampler = CostBinSampler(space, config.seed, config.cost_bins or REFERENCE_BINS,
                                     config.bin_tries)
    eval_split = config.eval_split or ("holdout" if config.is_supernet else "test")
    effective = dataclasses.replace(config, data=data, space_overrides=overrides,
                                    arch=None if arch is None else str(arch), uniform_bits=None,
                                    eval_split=eval_split)
    return Resolved(effective, space, arch, sampler, dict(info.num_examples),
                    eval_sampler if config.sampling == "cost_bins" else None)


# ----------------------------------------------------------------------------------- pieces
_MIRRORED = {}


def mirrored_strategy(devices) -> tf.distribute.MirroredStrategy:
    """One ``MirroredStrategy`` per device list for the whole process.

    Two MirroredStrategy objects in one process hand out the same collective instance keys, and
    the second one's all-reduces then fail with "Shape mismatch in the collective instance"; so
    runs in one process (tests, notebooks, the pipeline) share one strategy per device list.
    """
    key = tuple(devices)
    if key not in _MIRRORED:
        _MIRRORED[key] = tf.distribute.MirroredStrategy(list(key))
    return _MIRRORED[key]


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy of ``--strategy`` (create it before any other TF op;
    ``mirrored`` is shared within a process, see :func:`mirrored_strategy`).

    Raises:
      ValueError: ``multi_worker`` without a ``TF_CONFIG`` cluster.
    """
    _check_choice("strategy", name, STRATEGIES)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
                   or [d.name for d in tf.config.list_logical_devices("CPU")])
        return mirrored_strategy(devices)
    tf_config = os.environ.get("TF_CONFIG", "")
    try:
        cluster = json.loads(tf_config).get("cluster") if tf_config else None
    except ValueError:
        raise ValueError(f"TF_CONFIG is not valid JSON: {tf_config[:200]!r}") from None
    if not cluster:
        raise ValueError(
            "--strategy=multi_worker needs the cluster in TF_CONFIG, e.g. TF_CONFIG='{\"cluster\": "
            "{\"worker\": [\"host1:port\", \"host2:port\"]}, \"task\": {\"type\": \"worker\", "
            "\"index\": 0}}' on each worker (index 0 is the chief)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def task_of(strategy) -> tuple:
    """``(is_chief, task_name)``; ``task_name`` is None for the chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, None
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
    return chief, None if chief else f"{task_type}_{task_id}"


def workers_of(strategy) -> tuple:
    """``(number of workers, this worker's index)``; the chief, if any, is worker 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return 1, 0
    cluster = resolver.cluster_spec().as_dict()
    has_chief = "chief" in cluster
    count = len(cluster.get("worker", [])) + (1 if has_chief else 0)
    if resolver.task_type == "chief":
        return count, 0
    return count, (resolver.task_id or 0) + (1 if has_chief else 0)


class SmoothedSparseCE(keras.losses.Loss):
    """Cross-entropy from logits with integer labels and label smoothing (one-hot inside).

    ``call`` returns the per-example loss; reduction follows the Keras ``reduction`` argument.
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.0,
                 reduction=keras.losses.Reduction.AUTO, name="smoothed_sparse_ce"):
        super().__init__(reduction=reduction, name=name)
        self.num_classes, self.label_smoothing = int(num_classes), float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), self.num_classes,
                            dtype=y_pred.dtype)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        return tf.nn.softmax_cross_entropy_with_logits(labels, y_pred)

    def get_config(self):
        return dict(super().get_config(), num_classes=self.num_classes,
                    label_smoothing=self.label_smoothing)


def make_schedule(config: TrainConfig):
    lr, steps = config.learning_rate, config.steps
    if config.lr_schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(lr, steps, 0.0, power=1.0)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.0)
    return lr


def make_optimizer(config: TrainConfig):
    """Masked SGD/Adam (without owners, i.e. for a stand-alone model, they are plain SGD/Adam with
    L2 on kernels only); loss-scaled for ``precision="mixed_float16"``."""
    schedule = make_schedule(config)
    if config.optimizer == "sgd":
        optimizer = spos_tf.MaskedSGD(schedule, momentum=config.momentum,
                                      weight_decay=config.weight_decay)
    else:
        optimizer = spos_tf.MaskedAdam(schedule, weight_decay=config.weight_decay)
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
        seed = tf.stack([tf.constant(self.seed, tf.int64) + 1_000_003 * replica,
                         tf.cast(self._step_fn(), tf.int64)])
        return tf.nn.experimental.stateless_dropout(x, self.rate, seed)


def make_dropout_deterministic(model, step_fn, seed: int) -> None:
    """Replaces the head's Keras ``Dropout`` (no variables) by a :class:`StepDropout`."""
    head = model.head if hasattr(model, "head") else model.get_layer("head")
    old = head.dropout
    head.dropout = StepDropout(old.rate, (seed * 7919 + 17) % (2 ** 31 - 1), step_fn,
                               name="step_dropout")


def _path_macs(space: SearchSpace, arch) -> float:
    return float(costs_lib.CostTable(space).macs(arch))


def _bitops_fn(resolved: Resolved):
    """``f(step) -> BitOps`` of the path trained at ``step`` (0-based) for a quantized space,
    else None. The supernet's path of a step is ``sampler(step)`` (a host-side table lookup,
    ~tens of microseconds); a stand-alone network's is fixed."""
    space = resolved.space
    if not space.quantized:
        return None
    table = costs_lib.table(space)
    if resolved.arch is not None:
        bitops = float(table.bitops(resolved.arch))
        return lambda step: bitops
    return lambda step: float(table.bitops(resolved.sampler(step)))


def _bin_fn(resolved: Resolved):
    """``(edges, f(step) -> bin index or -1)`` of the supernet's sampled path at ``step`` (0-based)
    for the histogram in metrics.jsonl, or None without bins (see ``TrainConfig.cost_bins``)."""
    config = resolved.config
    edges = config.cost_bins or (REFERENCE_BINS if config.sampling == "cost_bins" else None)
    if edges is None or not config.is_supernet:
        return None
    edges, table = check_bins(edges), costs_lib.table(resolved.space)
    return edges, lambda step: bin_index(edges, table.macs(resolved.sampler(step)))


class TensorBoard:
    """Scalar summaries under ``<workdir>/tb`` (``tf.summary.scalar``; chief only)."""

    def __init__(self, logdir: str, enabled: bool = True):
        self.writer = tf.summary.create_file_writer(logdir) if enabled else None

    def write(self, step: int, scalars: dict) -> None:
        if self.writer is None:
            return
        with self.writer.as_default(step=int(step)):
            for name, value in scalars.items():
                tf.summary.scalar(name, float(value))
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------------------- evaluation
class Evaluator:
    """Evaluates the model of a run on a non-distributed twin (the training state is untouched).

    Supernet: each of ``eval_paths`` fixed random paths gets its BN statistics recalibrated
    exactly on ``calib_batches`` batches of training images (no augmentation; the same images for
    every path), then its top-1 accuracy on ``eval_split``. Stand-alone: top-1 accuracy with the
    model's own BN statistics. Uses :class:`spos_tf.evaluate.PathEvaluator` (two traces in all).
    """

    def __init__(self, resolved: Resolved, strategy=None):
        from spos_tf.evaluate import PathEvaluator

        config = resolved.config
        self.config, self.space = config, resolved.space
        self.strategy = strategy or tf.distribute.get_strategy()
        self.supernet = config.is_supernet
        with tf.distribute.get_strategy().scope():
            self.twin = run_dir.build_model(config.to_dict(), resolved.space)
        self.calib = build_dataset(config.data, "calib", config.eval_batch_size, training=False,
                                   seed=config.seed, repeat=False)
        val = build_dataset(config.data, config.eval_split, config.eval_batch_size,
                            training=False, seed=config.seed, repeat=False)
        self.val = val.take(config.eval_batches) if config.eval_batches else val
        if self.supernet:
            sampler = resolved.eval_sampler or resolved.sampler
            self.paths = [sampler(EVAL_STEP_OFFSET + i) for i in range(config.eval_paths)]
        else:
            self.paths = [resolved.arch]
        self.path_evaluator = PathEvaluator(self.twin, self.calib, self.val, config.calib_batches)

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
            accuracy = (self.path_evaluator(arch) if self.supernet
                        else self.path_evaluator.evaluate())
            results.append({"arch": str(arch), "macs": _path_macs(self.space, arch),
                            "accuracy": accuracy})
        accs = [r["accuracy"] for r in results]
        record = {"val_accuracy": float(np.mean(accs)), "eval_split": self.config.eval_split}
        if self.supernet:
            record.update(val_accuracy_min=float(min(accs)), val_accuracy_max=float(max(accs)),
                          val_paths=results, bn_recalibrated=True,
                          calib_batches=self.config.calib_batches)
        return record

    def final_bn_pass(self, model, num_batches: int) -> int:
        """Stand-alone: exact BN statistics on ``num_batches`` calibration batches (augmented
        with ``config.final_bn_augment``), written back to ``model`` (the weights do not change:
        the learning rate is 0 for this pass). Cost: ``num_batches`` training-mode forward passes
        of ``eval_batch_size`` images on one device."""
        self.sync_from(model)
        calib = self.calib
        if self.config.final_bn_augment:
            calib = build_dataset(self.config.data, "calib", self.config.eval_batch_size,
                                  training=False, augment=True, seed=self.config.seed,
                                  repeat=True, drop_remainder=True)
        used = self.path_evaluator.recalibrate(calib, num_batches)
        model.set_weights(self.twin.get_weights())
        return used


# ----------------------------------------------------------------------------------- the run
def run(config: TrainConfig, *, flags_text: str | None = None, stream=None) -> dict:
    """Trains as ``config`` says, in ``config.workdir``; returns the final evaluation record.

    Resumes from the workdir's latest checkpoint when it holds a run of the same config. Bad
    input is reported before anything is written.

    Args:
      config: the run's config (validated here).
      flags_text: written to ``<workdir>/flags.txt`` (the app passes the effective flags).
      stream: where the progress bar and the summary go (default stdout).

    Returns:
      The last ``metrics.jsonl`` record: ``{"step", "val_accuracy", ...}``.

    Raises:
      ConfigError (a ValueError): bad config, space, op, architecture, data config or MACs range.
      FileNotFoundError: data set missing (the message says what to put where).
      run_dir.RunDirError (a ValueError): workdir of a different config, damaged run;
        run_dir.CheckpointError: damaged checkpoint.
      DivergenceError: the loss or weights became NaN/Inf (the last good checkpoint is kept).
    """
    try:
        config.validate()
        strategy = make_strategy(config.strategy)  # MultiWorkerMirroredStrategy must come first
        resolved = resolve(config)
        config = resolved.config
        replicas = strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(f"--batch_size={config.batch_size} is not divisible by the "
                             f"{replicas} replicas of --strategy={config.strategy}")
        chief, task = task_of(strategy)
        status = run_dir.check_workdir(os.fspath(config.workdir), config.to_dict(),
                                       overwrite=config.overwrite, neutral=NEUTRAL_FIELDS,
                                       defaults=TrainConfig().to_dict())
    except run_dir.RunDirError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e
    with precision.policy_scope(config.precision):  # the models are built in it
        return _Run(strategy, resolved, chief, task, status, flags_text, stream).train()


class _Run:
    """One training run (the state that :func:`run` threads through its phases)."""

    def __init__(self, strategy, resolved, chief, task, status, flags_text, stream):
        self.strategy, self.resolved, self.config = strategy, resolved, resolved.config
        self.space, self.chief, self.task, self.status = resolved.space, chief, task, status
        self.workdir = os.fspath(self.config.workdir)
        self.stream = stream
        config = self.config
        self.flags_text = flags_text
        if chief and status != "resume":  # a resumed run rewrites it once its checkpoint loaded
            if status == "overwrite":
                run_dir.clear(self.workdir)
            run_dir.write_config(self.workdir, config.to_dict(), flags_text)
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
        make_dropout_deterministic(self.model, lambda: tf.convert_to_tensor(iterations),
                                   config.seed)

        # One plain tf.data iterator per worker, yielding this worker's share of the global batch;
        # the train step splits it between the worker's replicas. Unlike tf.distribute's
        # distributed iterators (not trackable in TF 2.21), it can be saved in the checkpoint,
        # so a resumed run reads exactly the batches an uninterrupted one would.
        num_workers, worker = workers_of(strategy)
        context = None
        if num_workers > 1:
            context = tf.distribute.InputContext(num_input_pipelines=num_workers,
                                                 input_pipeline_id=worker,
                                                 num_replicas_in_sync=num_workers)
        ds = build_dataset(config.data, "train", config.batch_size, training=True,
                           seed=config.seed, input_context=context)
        if not config.data.cache:  # checkpoint the iterator's position, not its buffers
            options = tf.data.Options()
            options.experimental_symbolic_checkpoint = True
            ds = ds.with_options(options)
        self.local_replicas = strategy.num_replicas_in_sync // num_workers
        self.local_batch = config.batch_size // num_workers
        self.iterator = iter(ds)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                              data=self.iterator, final_bn=self.final_bn)
        self.ckpt_dir = run_dir.checkpoint_dir(self.workdir, task)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.ckpt_dir,
                                                  max_to_keep=config.keep_checkpoints)
        self.tb = None
        self._train_step = self._make_train_step()
        self._bitops = _bitops_fn(resolved)
        self._bins = _bin_fn(resolved)

    # ------------------------------------------------------------------ steps
    def _make_train_step(self):
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        supernet, global_batch = self.config.is_supernet, self.config.batch_size
        loss_fn = SmoothedSparseCE(self.space.num_classes, self.config.label_smoothing,
                                   reduction=keras.losses.Reduction.NONE)
        fixed_macs = 0.0 if supernet else _path_macs(self.space, self.resolved.arch)
        tvars = model.trainable_variables

        def step_loss(labels, logits):  # per replica: summed over its examples / global batch
            return tf.reduce_sum(loss_fn(labels, logits)) / global_batch

        def step_fn(images, labels):
            out = step_lib.train_step(model, optimizer, step_loss, images, labels, fixed_macs)
            bad = 1.0 - tf.cast(out.finite, tf.float32)  # summed over replicas: > 0 if any is bad
            correct = tf.reduce_sum(tf.cast(
                tf.equal(tf.argmax(out.logits, -1, output_type=tf.int32), labels), tf.float32))
            return out.loss, correct, bad, out.macs

        local_replicas = self.local_replicas
        per_replica = self.local_batch // local_replicas

        def split(batch):  # this worker's batch -> one contiguous slice per local replica
            if strategy.num_replicas_in_sync == 1:
                return batch

            def value_fn(context):
                j = context.replica_id_in_sync_group % local_replicas
                return batch[j * per_replica:(j + 1) * per_replica]

            return strategy.experimental_distribute_values_from_function(value_fn)

        @tf.function
        def train_step(iterator):
            images, labels = next(iterator)
            loss, correct, bad, macs = strategy.run(step_fn, args=(split(images), split(labels)))
            sum_ = tf.distribute.ReduceOp.SUM
            return (strategy.reduce(sum_, loss, None), strategy.reduce(sum_, correct, None),
                    strategy.reduce(sum_, bad, None),
                    strategy.reduce(tf.distribute.ReduceOp.MEAN, macs, None))

        @tf.function
        def weights_finite():
            return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in tvars])

        self._weights_finite = weights_finite
        return train_step

    def _restore(self) -> int:
        """Restores this task's latest checkpoint when the run resumes; returns the step."""
        step = 0
        if self.status == "resume":
            path = run_dir.latest_checkpoint(self.ckpt_dir)
            if path is not None:
                run_dir.read_checkpoint(self.checkpoint, path)
                step = int(self.optimizer.iterations.numpy())
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
                f"every worker has the same latest step, or pass --overwrite")

    def _save(self, step: int) -> None:
        if not bool(self._weights_finite()):
            self._diverged(step, "the weights contain NaN/Inf")
        self.manager.save(checkpoint_number=step)

    def _diverged(self, step: int, what: str):
        kept = self.manager.latest_checkpoint
        keep = (f"the last good checkpoint {kept} is kept; a rerun with the same flags resumes "
                f"from it and diverges again at the same step"
                if kept else "no checkpoint had been written yet")
        raise DivergenceError(
            f"training diverged at step {step}: {what}. Training stopped; {keep}. Fix: lower "
            f"--learning_rate (now {self.config.learning_rate:g}) or check the input data, and "
            f"start over with --overwrite or a new --workdir")

    def _print(self, text: str) -> None:
        if self.chief:
            stream = self.stream or __import__("sys").stdout
            stream.write(text + "\n")
            stream.flush()

    # ------------------------------------------------------------------ loop
    def _evaluator(self) -> "Evaluator":
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
        finished = start >= config.steps and (not config.final_bn_batches
                                              or int(self.final_bn.numpy()))
        if finished:
            records = self.metrics.read() if self.chief else []
            if records and records[-1].get("final"):
                self._print(f"{self.workdir}: already trained for {config.steps} steps; final "
                            f"val_accuracy {records[-1]['val_accuracy']:.4f}")
                return records[-1]
        kind = "supernet" if config.is_supernet else f"stand-alone network {config.arch}"
        self._print(f"{'Resuming' if start else 'Training'} the {kind} of space "
                    f"{self.space.name} ({self.space.num_blocks} choice blocks) at step "
                    f"{start}/{config.steps}, global batch {config.batch_size} on "
                    f"{self.strategy.num_replicas_in_sync} replica(s); workdir {self.workdir}")
        self.tb = TensorBoard(os.path.join(self.workdir, run_dir.TB_DIR), enabled=self.chief)
        try:
            step = self._loop(start)
            if config.final_bn_batches and not int(self.final_bn.numpy()):
                used = self._evaluator().final_bn_pass(self.model, config.final_bn_batches)
                self.final_bn.assign(1)
                self._save(step)
                images = "augmented" if config.final_bn_augment else "un-augmented"
                self._print(f"Recomputed exact BN statistics on {used} batches (learning rate 0, "
                            f"{images} training images).")
            return self._evaluate(step, final=True) if self.chief else {}
        finally:
            self.tb.close()

    def _loop(self, start: int) -> int:
        config = self.config
        schedule = make_schedule(config)
        bar = ProgressBar(config.steps, initial=start, stream=self.stream,
                          enabled=self.chief and config.progress)
        window = np.zeros(5)  # loss, correct, macs, steps, bitops
        bins = np.zeros(len(self._bins[0]) if self._bins else 0, np.int64)  # per bin, outside
        window_start = time.monotonic()
        step = start
        try:
            while step < config.steps:
                loss, correct, bad, macs = self._train_step(self.iterator)
                step += 1
                loss, correct, macs = float(loss), float(correct), float(macs)
                if float(bad) > 0.0:
                    bar.close()
                    self._diverged(step, f"the loss is {loss}" if not math.isfinite(loss) else
                                   f"the gradients contain NaN/Inf (loss {loss:.4g})")
                window += (loss, correct, macs, 1,
                           self._bitops(step - 1) if self._bitops else 0.0)
                if self._bins:
                    bins[self._bins[1](step - 1)] += 1   # -1 (outside) counts in the last entry
                bar.update(step, loss=loss, acc=correct / config.batch_size, MMACs=macs / 1e6)
                if step % config.log_every == 0 or step == config.steps:
                    elapsed = max(time.monotonic() - window_start, 1e-9)
                    n = window[3]
                    record = {"step": step, "loss": window[0] / n,
                              "accuracy": window[1] / (n * config.batch_size),
                              "learning_rate": _lr_at(schedule, step - 1),
                              "arch_macs": window[2] / n, "steps_per_second": n / elapsed,
                              "examples_per_second": n * config.batch_size / elapsed}
                    if self._bitops:
                        record["arch_bitops"] = window[4] / n
                    if self._bins:
                        record["path_bins"] = bins[:-1].tolist()
                        record["path_bins_outside"] = int(bins[-1])
                        bins[:] = 0
                    self.metrics.append(record)
                    self.tb.write(step, {k: record[k] for k in (
                        "loss", "accuracy", "learning_rate", "arch_macs")})
                    window[:] = 0
                    window_start = time.monotonic()
                if step % config.checkpoint_every == 0 or step == config.steps:
                    self._save(step)
                if (self.chief and config.eval_every and step % config.eval_every == 0
                        and step < config.steps):
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
                f"{record['val_accuracy_min']:.4f}, max {record['val_accuracy_max']:.4f})")
        else:
            self._print(f"{when} {split} accuracy of {self.config.arch}: "
                        f"{record['val_accuracy']:.4f}")
        return record


def _lr_at(schedule, step: int) -> float:
    return float(schedule(step)) if callable(schedule) else float(schedule)
