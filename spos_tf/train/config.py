"""The training run's settings: :class:`TrainConfig` (each setting, its flag, help text and checks
written once, as :mod:`spos_tf.runs.config_flags` field metadata) and :func:`resolve`, which fills the
data-dependent settings and builds the space, the architecture and the path sampler.

Plain data and checks: nothing here touches files (but :func:`resolve`, which opens the data set's
metadata) or builds a model.

Why one module of this size: about 50 settings written once each, with their checks; most of its
lines are the fields' help texts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

from spos_tf.runs import config_flags
from spos_tf.runs import run_dir
from spos_tf import spaces
from spos_tf.runs.choices import EVAL_SPLITS, PRECISIONS, calib_batches
from spos_tf import costs as costs_lib
from spos_tf.runs.config_flags import field
from spos_tf.data import DataConfig, dataset_info
from spos_tf.data import resolve as resolve_data
from spos_tf.models.rank_pairs import RankPairSampler
from spos_tf.models.sampling import (
    REFERENCE_BINS,
    ArchSampler,
    BalancedSampler,
    CostBinSampler,
    DistinctSampler,
    FairSampler,
    GeneSampler,
    ListSampler,
    all_of,
    check_bins,
    latency_range,
    macs_range,
    split_choices,
)
from spos_tf.spaces import overrides as space_overrides
from spos_tf.spaces.archs_file import read_archs_file
from spos_tf.spaces.space import Architecture, SearchSpace, arch_from_any
from spos_tf.runs.strategy import STRATEGIES

OPTIMIZERS = ("sgd", "adam")
SAMPLINGS = ("uniform", "cost_bins", "balanced", "fair", "rank_pairs", "distinct")
LR_SCHEDULES = ("linear", "cosine", "constant", "complexity_aware")
CALR_GAMMA_MAX = 4.0  # DYNAS's decay exponent for the fewest MACs (1/4 for the most)
RANK_LOSS_WEIGHT, RANK_LOSS_MARGIN = 1.0, 0.02  # --sampling=rank_pairs (this library's choice)


class ConfigError(ValueError):
    """Bad input found before anything was written (config, space, architecture, data)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults are the paper's ImageNet supernet recipe.

    Each field is one flag of ``python -m spos_tf.train`` (but ``space_overrides``, filled from
    ``--ops`` and the space override flags, and ``data``, whose fields have flags of their own);
    bounds and choices are checked by :meth:`validate`.

    Attributes:
      workdir: run directory (see :mod:`spos_tf.runs.run_dir`).
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
        (the paper), ``"cosine"`` likewise along a half cosine, ``"constant"`` keeps it;
        ``"complexity_aware"`` (supernet only; DYNAS's CaLR, Jeon et al., CVPR 2025) gives each
        sampled path the rate ``learning_rate * (1 - step/T) ** gamma``, gamma falling linearly
        in log MACs from ``calr_gamma_max`` (DYNAS: 4) for the space's fewest MACs to its
        inverse for its most (small paths decay fast, large ones slowly;
        :func:`spos_tf.train.recipe.complexity_aware_weight`); the logged ``learning_rate`` is
        then the peak, the per-path factor being a loss weight.
      calr_gamma_max: ``complexity_aware`` only: the exponent of the fewest-MACs path (> 1; larger
        corrects the supernet's favour of small paths harder).
      lr_schedule_steps: length of the schedule; ``None`` (default) = ``steps``. Longer than
        ``steps`` stops training part-way down the schedule, at a rate above 0: the run is the
        first ``steps`` updates of a ``lr_schedule_steps`` run, bit for bit (on NAS-Bench-201 a
        supernet stopped at 60% of its cosine ranks cells far better than at its end,
        ``flags/nb201_supernet.cfg``).
      lr_schedule_start: the schedule's step at this run's first update (default 0): the run
        takes the schedule's updates ``lr_schedule_start .. lr_schedule_start + steps``, so
        ``lr_schedule_steps`` must cover them. With ``init_from`` a checkpoint at step ``s``
        of a run with the same recipe, ``lr_schedule_start=s`` continues its rate (CaLR's
        per-path factor included); the optimizer's momentum still starts fresh.
      momentum: SGD momentum. weight_decay: L2 on conv/FC kernels only (sampled path only).
      label_smoothing: of the cross-entropy (0.1 in the paper).
      min_macs, max_macs: supernet only: sample only paths with MACs in this range.
      sampling: supernet only: ``"uniform"`` (the paper: every path equally likely per step) or
        ``"cost_bins"`` (the reference release's rule, :class:`~spos_tf.models.sampling.CostBinSampler`:
        a MACs bin uniformly, then up to ``bin_tries`` uniform draws inside it, else one
        unconstrained draw), ``"balanced"`` (a bin uniformly among 8 equal MACs bins spanning the
        whole space, or ``cost_bins``, then a path inside it: :class:`~spos_tf.models.sampling.
        BalancedSampler`) or ``"fair"``
        (FairNAS strict fairness, :class:`~spos_tf.models.sampling.FairSampler`: every choice of every
        block once per step, K paths on one batch, summed gradients, one update; K x the cost)
        or ``"rank_pairs"`` (ranking distillation with MACs as the teacher, after RD-NAS:
        :mod:`spos_tf.models.rank_pairs`; two paths per step from different MACs groups, their
        losses plus ``rank_loss_weight`` x a margin ranking loss, one update; 2x the cost)
        or ``"distinct"`` (de-isomorphic sampling: uniform over the distinct networks of a cell
        space, each trained in its canonical form, :class:`~spos_tf.models.sampling.
        DistinctSampler`; uniform in other spaces; honours the MACs and latency ranges).
        The evaluation paths stay uniform with every rule.
      rank_loss_weight, rank_loss_margin: ``rank_pairs`` only: the ranking loss's weight and its
        margin per MACs group step (:class:`~spos_tf.models.rank_pairs.RankPairSampler`).
      cost_bins: MACs bin edges (increasing). ``cost_bins`` sampling draws among these bins
        (None: the reference's 290M..360M in 10M steps); with any sampling, when set, every
        metrics record holds ``path_bins`` (sampled paths per bin since the last record) and
        ``path_bins_outside``.
      bin_tries: ``cost_bins`` sampling: draws per step inside the chosen bin (the reference: 500).
      latency_table, min_latency_ms, max_latency_ms: supernet only: sample only paths whose
        latency predicted by this lookup table (``spos_tf.latency build``) is in this range.
      few_shot_split, few_shot_from: supernet only: Few-shot NAS (:mod:`spos_tf.train.few_shot`):
        train one sub-supernet per choice of block (edge) ``few_shot_split``'s op, each starting
        from the model weights and BN statistics of the latest checkpoint of the one-shot supernet
        run ``few_shot_from`` (fresh optimizer state) and trained ``steps`` more steps with this
        recipe; ``workdir`` then holds ``few_shot.json`` and one run directory per sub-supernet.
        :func:`resolve` stores ``few_shot_from`` as an absolute path.
      init_from: supernet only: a one-shot supernet run of the same space (its ``--workdir``) or
        one of its checkpoints (``<workdir>/checkpoints/ckpt-<step>``): a run with no checkpoint
        of its own starts from that checkpoint's model weights and BN statistics (the run's
        latest when a folder is given, recorded in ``<workdir>/init_from.json`` at the first
        start so a resume reads the same one); the optimizer state and the schedule start fresh.
        E.g. the equal-budget one-shot control of a few-shot split (:mod:`spos_tf.train.init`).
        :func:`resolve` stores it as an absolute path.
      momentum_split: supernet only: DYNAS's momentum separation (Jeon et al., CVPR 2025): the
        optimizer keeps one set of slots (SGD momentum, Adam moments) per choice of block (edge)
        ``momentum_split``'s op (:func:`~spos_tf.models.sampling.split_kind`), and each step reads
        and updates only the set of the sampled path's choice there, so paths that differ on that
        edge no longer share momentum (:class:`spos_tf.models.optim.MaskedOptimizer`). Slot
        memory grows by the number of ops. Not with ``sampling="fair"`` (one update trains every
        op of the edge) or a few-shot split (each sub-supernet already has one op there).
      few_shot_choice: set by :mod:`spos_tf.train.few_shot` in a sub-supernet's own config (no flag):
        the run is the sub-supernet whose block ``few_shot_split`` always uses this choice
        (:class:`~spos_tf.models.sampling.GeneSampler`).
      sample_from: supernet only: a text file of architectures (one per line in text form, ``#``
        comments; :func:`spos_tf.spaces.archs_file.read_archs_file`): each step trains one of
        them, drawn uniformly from ``(seed, step)`` (:class:`~spos_tf.models.sampling.ListSampler`),
        instead of the whole space; the evaluation paths stay uniform over the space. With
        ``init_from`` this fine-tunes a supernet on a shrunk space (e.g. a search's finalists,
        scored again after with ``spos_tf.rank --select=file``). The architectures are recorded in
        ``<workdir>/sample_from.json`` at the first start, and a resume whose file lists others is
        refused; :func:`resolve` stores the path as an absolute path. Only with
        ``sampling="uniform"`` and no MACs, latency or few-shot restriction (the list is the
        restriction).
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
      calib_images: supernet: BN recalibration images per evaluated path (training images in
        stored order, no augmentation, exact cumulative average), read in batches of
        ``eval_batch_size``: :attr:`num_calib_batches` = ``ceil(calib_images / eval_batch_size)``
        batches (:func:`spos_tf.runs.choices.calib_batches`, the search's and the export's rule
        too). The default 5,120 is 20 batches of the default 256.
      final_bn_batches: stand-alone only: after the last step, recompute exact BN statistics on
        this many batches with the learning rate at 0 (0: skip), saved with the final checkpoint.
      final_bn_augment: the final BN pass reads training images through the training
        augmentation (as the reference's pass over ~1,250 x 1,024 augmented images; seeded by
        position, in stored order, repeated as needed); default: un-augmented training images.
      deterministic: train with TensorFlow's Grappler graph optimizer off
        (:func:`spos_tf.runs.determinism.reproducible_graphs`), so that the same flags give the
        same weights bit for bit; with Grappler on, runs of the supernet of
        ``flags/nb201_supernet.cfg`` part after a few steps (``benchmarks/determinism.py``).
        Measured cost on 2 CPU cores: within noise; GPU graphs may lose Grappler's fusions.
        A run resumes only with the setting it started with (it changes the result).
      progress: show a progress bar.
    """

    workdir: Optional[str] = field(
        None, "Run directory: config, checkpoints, metrics, TensorBoard.", neutral=True
    )
    overwrite: bool = field(
        False, "Delete a previous run of another config in --workdir.", neutral=True
    )
    space: str = field("shufflenet_oneshot", f"Search space: {', '.join(spaces.names())}.")
    space_overrides: dict = field(default_factory=dict, flag=False)
    arch: Optional[str] = field(
        None,
        "Retrain this architecture (text form or a JSON file) instead of training the supernet.",
    )
    uniform_bits: Optional[int] = field(
        None,
        "Quantized spaces: retrain the uniform kWkA "
        "baseline (channel scale 1.0, k bits everywhere) instead "
        "of --arch.",
        low=1,
    )
    seed: int = field(0, "Seeds weights, sampled paths, data order, augmentation.", low=0)
    data: DataConfig = field(default_factory=DataConfig, flag=False)
    steps: int = field(150_000, "Training steps.", low=1)
    batch_size: int = field(1024, "Global batch size (split across replicas).", low=1)
    optimizer: str = field("sgd", "Optimizer (masked for the supernet).", choices=OPTIMIZERS)
    learning_rate: float = field(0.5, "Peak learning rate.", low=0.0, low_open=True)
    lr_schedule: str = field(
        "linear",
        "linear: decay per step to 0 (the paper); cosine; constant; complexity_aware (supernet: "
        "DYNAS's CaLR, each sampled path's rate decays as (1-step/T)^gamma, gamma from "
        "--calr_gamma_max (4) for the fewest MACs to its inverse for the most, linear in log MACs).",
        choices=LR_SCHEDULES,
    )
    calr_gamma_max: float = field(
        CALR_GAMMA_MAX,
        "--lr_schedule=complexity_aware: the decay exponent of the fewest-MACs path (its inverse "
        "for the most); DYNAS's 4 by default, larger corrects the favour of small paths harder.",
        low=1.0,
        low_open=True,
    )
    lr_schedule_steps: Optional[int] = field(
        None,
        "Length of the learning-rate schedule (default: --steps); longer stops training "
        "part-way down it, at a rate above 0.",
        low=1,
    )
    lr_schedule_start: int = field(
        0,
        "Step of the learning-rate schedule this run starts at (needs --lr_schedule_steps "
        ">= start + --steps); with --init_from, continues the source run's schedule from its "
        "checkpoint's step.",
        low=0,
    )
    momentum: float = field(0.9, "SGD momentum.", low=0.0, high=1.0, high_open=True)
    weight_decay: float = field(4e-5, "L2 on conv/FC kernels only.", low=0.0)
    label_smoothing: float = field(0.1, "Label smoothing.", low=0.0, high=1.0, high_open=True)
    min_macs: Optional[float] = field(
        None, "Supernet: sample only paths with at least these MACs.", low=0.0
    )
    max_macs: Optional[float] = field(
        None, "Supernet: sample only paths with at most these MACs.", low=0.0
    )
    sampling: str = field(
        "uniform",
        "Supernet path sampling: uniform (the paper); cost_bins "
        "(the reference release: a MACs bin of --cost_bins uniformly, then up "
        "to --bin_tries uniform draws inside it, else one unconstrained draw); balanced "
        "(the same over 8 equal MACs bins spanning the whole space, or --cost_bins); fair "
        "(FairNAS: every step trains every choice of every block once, K paths on one batch, "
        "gradients summed, one update; K times the cost of a step); rank_pairs (ranking "
        "distillation after RD-NAS, MACs as the teacher: two paths from different MACs groups "
        "per step, their losses plus --rank_loss_weight x a margin ranking loss asking the path "
        "with more MACs for the lower loss; 2x the cost of a step); distinct (de-isomorphic: "
        "uniform over the distinct networks of a cell space such as NAS-Bench-201's, each "
        "trained in its canonical form with none on the edges that cannot reach the output; "
        "uniform elsewhere).",
        choices=SAMPLINGS,
    )
    rank_loss_weight: float = field(
        RANK_LOSS_WEIGHT,
        "--sampling=rank_pairs: weight of the margin ranking loss in the step's objective.",
        low=0.0,
    )
    rank_loss_margin: float = field(
        RANK_LOSS_MARGIN,
        "--sampling=rank_pairs: ranking margin per MACs group between the two paths (8 MACs "
        "quantile groups; in units of the training loss).",
        low=0.0,
    )
    cost_bins: Optional[tuple] = field(
        None,
        "MACs bin edges, e.g. 290e6,300e6,...,360e6 (default for --sampling=cost_bins: the "
        "reference's 290M..360M by 10M); when set, metrics.jsonl counts sampled paths per bin "
        "(path_bins).",
    )
    bin_tries: int = field(
        500,
        "--sampling=cost_bins: uniform draws per step inside the chosen "
        "bin before the fallback draw (the reference: 500).",
        low=1,
    )
    latency_table: Optional[str] = field(
        None,
        "Supernet: latency lookup table for --min_latency_ms/--max_latency_ms (python -m "
        "spos_tf.latency build).",
    )
    min_latency_ms: Optional[float] = field(
        None, "Supernet: sample only paths predicted at least this slow.", low=0.0
    )
    max_latency_ms: Optional[float] = field(
        None, "Supernet: sample only paths predicted at most this slow.", low=0.0
    )
    few_shot_split: Optional[int] = field(
        None,
        "Supernet: Few-shot NAS (Zhao et al., ICML 2021): train one sub-supernet per op of this "
        "choice block (edge), each from the weights of --few_shot_from for --steps more steps "
        "(K x the cost of --steps); sub-supernet c samples only architectures with that op c.",
        low=0,
    )
    few_shot_from: Optional[str] = field(
        None,
        "--few_shot_split: the --workdir of the one-shot supernet run (same space) whose latest "
        "checkpoint every sub-supernet starts from.",
    )
    few_shot_choice: Optional[int] = field(None, flag=False)
    momentum_split: Optional[int] = field(
        None,
        "Supernet: DYNAS's momentum separation: one set of optimizer slots (momentum) per op of "
        "this choice block (edge); each step reads and updates only the set of the sampled "
        "path's op there (slot memory x the number of ops).",
        low=0,
    )
    init_from: Optional[str] = field(
        None,
        "Supernet: start from the weights and BN statistics of this one-shot supernet run's "
        "latest checkpoint (its --workdir) or of one checkpoint (<workdir>/checkpoints/ckpt-N); "
        "fresh optimizer and schedule, --steps more steps.",
    )
    sample_from: Optional[str] = field(
        None,
        "Supernet: train only the architectures of this text file (one per line in text form, "
        "as spos_tf.rank --archs_file), one drawn uniformly per step; e.g. with --init_from, "
        "fine-tune a supernet on a search's finalists before they are scored again.",
    )
    bn_momentum: float = field(
        0.9, "BatchNorm moving-average momentum (Keras form).", low=0.0, high=1.0, high_open=True
    )
    strategy: str = field(
        "default", "tf.distribute strategy; multi_worker reads TF_CONFIG.", choices=STRATEGIES
    )
    checkpoint_every: int = field(1000, "Steps between checkpoints.", low=1, neutral=True)
    keep_checkpoints: int = field(3, "Checkpoints kept.", low=1, neutral=True)
    log_every: int = field(100, "Steps per metrics record.", low=1, neutral=True)
    eval_every: int = field(0, "Steps between evaluations (0: final only).", low=0, neutral=True)
    eval_paths: int = field(10, "Supernet: random paths per evaluation.", low=1)
    eval_split: Optional[str] = field(
        None,
        "Evaluation split (default: holdout for the supernet, test for retraining: final "
        "numbers on data the search never saw).",
        choices=EVAL_SPLITS,
    )
    eval_batch_size: int = field(256, "Evaluation batch size.", low=1)
    eval_batches: int = field(0, "Evaluation batches (0: the whole split).", low=0)
    calib_images: int = field(
        5120,
        "Supernet: BN recalibration images per evaluated path, in batches of --eval_batch_size "
        "(rounded up to whole batches).",
        low=1,
    )
    final_bn_batches: int = field(
        0,
        "Retraining: exact BN statistics on this many batches after "
        "the last step, learning rate 0 (0: skip).",
        low=0,
    )
    final_bn_augment: bool = field(
        False,
        "Retraining: the final BN pass reads training images "
        "with the training augmentation (the reference's pass); "
        "default un-augmented.",
    )
    precision: str = field(
        "float32",
        "Compute dtype: mixed_float16 (GPUs; loss scaling) or "
        "mixed_bfloat16 (TPUs, CPUs with bfloat16 units); variables stay "
        "float32 (spos_tf.models.precision).",
        choices=PRECISIONS,
    )
    deterministic: bool = field(
        False,
        "Repeat bit for bit: trace the training graphs with TensorFlow's Grappler optimizer off "
        "(spos_tf.runs.determinism); without it, two runs of the same flags part after a few "
        "steps on the NAS-Bench-201 proxy supernet (benchmarks/determinism.py).",
    )
    progress: bool = field(True, "Show a progress bar.", neutral=True)

    @property
    def is_supernet(self) -> bool:
        return self.arch is None and self.uniform_bits is None

    @property
    def num_calib_batches(self) -> int:
        """BN recalibration batches of ``eval_batch_size`` per evaluated supernet path:
        ``ceil(calib_images / eval_batch_size)``."""
        return calib_batches(self.calib_images, self.eval_batch_size)

    def validate(self) -> "TrainConfig":
        """Checks every field without touching files or TensorFlow; returns ``self``.

        Bounds and choices come from the fields' metadata
        (:func:`spos_tf.runs.config_flags.check_fields`); the rules between fields are written here.

        Raises:
          ValueError: naming the flag and quoting the bad value.
        """
        if not isinstance(self.workdir, (str, os.PathLike)) or not str(self.workdir).strip():
            raise ValueError("--workdir is required: the run directory for checkpoints and logs")
        if self.space not in spaces.names():
            raise ValueError(
                f"unknown search space --space={self.space!r}; registered: "
                f"{', '.join(spaces.names())}"
            )
        if not isinstance(self.space_overrides, dict):
            raise ValueError(f"space_overrides must be a dict, got {self.space_overrides!r}")
        if self.arch is not None and (not isinstance(self.arch, str) or not self.arch.strip()):
            raise ValueError(
                f"--arch must be an architecture text or a file path, got {self.arch!r}"
            )
        config_flags.check_fields(self)
        if self.lr_schedule_steps is not None and self.lr_schedule_steps < self.steps:
            raise ValueError(
                f"--lr_schedule_steps={self.lr_schedule_steps} is shorter than --steps="
                f"{self.steps}: the rate would sit at its end value for the last updates; pass "
                f"--lr_schedule_steps >= --steps (or leave it unset for a schedule of --steps)"
            )
        if self.lr_schedule_start and (
            self.lr_schedule_steps is None
            or self.lr_schedule_start + self.steps > self.lr_schedule_steps
        ):
            raise ValueError(
                f"--lr_schedule_start={self.lr_schedule_start} with --steps={self.steps} runs past "
                f"the schedule's end (--lr_schedule_steps={self.lr_schedule_steps}); pass "
                f"--lr_schedule_steps >= {self.lr_schedule_start + self.steps} (the whole schedule "
                f"the run is a part of)"
            )
        if self.calr_gamma_max != CALR_GAMMA_MAX and self.lr_schedule != "complexity_aware":
            raise ValueError(
                f"--calr_gamma_max={self.calr_gamma_max} shapes --lr_schedule=complexity_aware; "
                f"with --lr_schedule={self.lr_schedule} it does nothing: drop it or pass "
                f"--lr_schedule=complexity_aware (where a flag file such as "
                f"flags/nb201_supernet.cfg sets it, add --calr_gamma_max={CALR_GAMMA_MAX:g} after "
                f"the flag file)"
            )
        if self.lr_schedule == "complexity_aware" and not self.is_supernet:
            raise ValueError(
                "--lr_schedule=complexity_aware sets each sampled path's rate by its MACs; a "
                "stand-alone network (--arch / --uniform_bits) has one path: use "
                "--lr_schedule=linear or cosine"
            )
        if self.uniform_bits is not None and self.arch is not None:
            raise ValueError(
                f"--uniform_bits={self.uniform_bits} retrains the uniform "
                f"{self.uniform_bits}W{self.uniform_bits}A network; drop it or "
                f"--arch={self.arch!r} (pass one of them)"
            )
        if not isinstance(self.data, DataConfig):
            raise ValueError(f"data must be a spos_tf.data.DataConfig, got {self.data!r}")
        self.data.validate()
        if (
            self.min_macs is not None
            and self.max_macs is not None
            and self.min_macs > self.max_macs
        ):
            raise ValueError(f"--min_macs={self.min_macs:g} is above --max_macs={self.max_macs:g}")
        if not self.is_supernet and (self.min_macs is not None or self.max_macs is not None):
            raise ValueError(
                "--min_macs/--max_macs constrain supernet sampling; drop them when "
                "retraining one architecture (--arch)"
            )
        if self.cost_bins is not None:
            check_bins(self.cost_bins)
        if not self.is_supernet and (self.sampling != "uniform" or self.cost_bins is not None):
            raise ValueError(
                "--sampling/--cost_bins choose how the supernet samples paths; drop "
                "them when retraining one architecture (--arch)"
            )
        if self.sampling in ("cost_bins", "balanced", "fair") and (
            self.min_macs is not None
            or self.max_macs is not None
            or self.min_latency_ms is not None
            or self.max_latency_ms is not None
        ):
            raise ValueError(
                f"--sampling={self.sampling} chooses the paths itself and cannot be "
                "combined with --min_macs/--max_macs/--min_latency_ms/--max_latency_ms"
                + ("; set the bin edges (--cost_bins) instead" if self.sampling != "fair" else "")
            )
        if self.sampling == "fair" and self.cost_bins is not None:
            raise ValueError("--sampling=fair trains every choice each step; drop --cost_bins")
        if self.sampling != "rank_pairs" and (
            self.rank_loss_weight != RANK_LOSS_WEIGHT or self.rank_loss_margin != RANK_LOSS_MARGIN
        ):
            raise ValueError(
                "--rank_loss_weight/--rank_loss_margin shape --sampling=rank_pairs; add "
                "--sampling=rank_pairs or drop them"
            )
        if self.sampling == "rank_pairs" and self.cost_bins is not None:
            raise ValueError(
                "--sampling=rank_pairs draws its pairs from MACs quantile groups; drop --cost_bins"
            )
        for name in ("min_latency_ms", "max_latency_ms"):
            if getattr(self, name) is not None and not self.latency_table:
                raise ValueError(
                    f"--{name} needs --latency_table (python -m spos_tf.latency "
                    f"build --space={self.space} --out=lut.json)"
                )
        if self.latency_table is not None and not self.is_supernet:
            raise ValueError(
                "--latency_table constrains supernet sampling; drop it when "
                "retraining one architecture (--arch)"
            )
        self._validate_few_shot()
        self._validate_init_from()
        self._validate_sample_from()
        if self.momentum_split is not None:
            if not self.is_supernet:
                raise ValueError(
                    "--momentum_split separates the supernet's paths; a stand-alone network "
                    "(--arch / --uniform_bits) has one path: drop --momentum_split"
                )
            if self.sampling in ("fair", "rank_pairs"):
                raise ValueError(
                    f"--sampling={self.sampling} trains several paths in one update, so no "
                    "single slot set owns it: drop --momentum_split or use another --sampling"
                )
            if self.few_shot_split is not None:
                raise ValueError(
                    "--few_shot_split gives each sub-supernet a single op on its split edge, "
                    "so its slots are already separate: drop --momentum_split"
                )
        if self.final_bn_augment and not self.final_bn_batches:
            raise ValueError(
                "--final_bn_augment chooses the images of the final BN pass; set "
                "--final_bn_batches (its length) too, or drop it"
            )
        if self.final_bn_batches and self.is_supernet:
            raise ValueError(
                "--final_bn_batches applies to retraining (--arch); the supernet's "
                "BN statistics are recalibrated per path at evaluation and search"
            )
        return self

    def _validate_sample_from(self) -> None:
        if self.sample_from is None:
            return
        if (
            not isinstance(self.sample_from, (str, os.PathLike))
            or not str(self.sample_from).strip()
        ):
            raise ValueError(f"--sample_from must name a file, got {self.sample_from!r}")
        if not self.is_supernet:
            raise ValueError(
                "--sample_from chooses the supernet's paths; drop it when retraining one "
                "architecture (--arch)"
            )
        if self.sampling != "uniform":
            raise ValueError(
                f"--sample_from draws uniformly among the listed architectures; drop "
                f"--sampling={self.sampling} or --sample_from"
            )
        limits = ("min_macs", "max_macs", "min_latency_ms", "max_latency_ms", "few_shot_split")
        given = [f"--{n}" for n in limits if getattr(self, n) is not None]
        if given:
            raise ValueError(
                f"--sample_from trains exactly the listed architectures; drop {', '.join(given)} "
                "(list only the architectures you want)"
            )

    def _validate_init_from(self) -> None:
        if self.init_from is None:
            return
        if not isinstance(self.init_from, (str, os.PathLike)) or not str(self.init_from).strip():
            raise ValueError(f"--init_from must name a run directory, got {self.init_from!r}")
        if not self.is_supernet:
            raise ValueError(
                "--init_from starts a supernet from another supernet's weights; drop it when "
                "retraining one architecture (--arch / --uniform_bits)"
            )
        if self.few_shot_split is not None:
            raise ValueError(
                "--few_shot_split starts every sub-supernet from --few_shot_from; drop --init_from"
            )
        if self.workdir is None:
            return
        source, workdir = os.path.abspath(self.init_from), os.path.abspath(str(self.workdir))
        if os.path.commonpath([source, workdir]) == workdir:
            raise ValueError(
                f"--init_from={self.init_from!r} is this run's own --workdir: a run resumes from "
                f"its own checkpoints without it; pass another run, or drop --init_from"
            )

    def _validate_few_shot(self) -> None:
        if self.few_shot_split is None:
            if self.few_shot_from is not None or self.few_shot_choice is not None:
                raise ValueError(
                    f"--few_shot_from={self.few_shot_from!r} names the one-shot run a few-shot "
                    f"split starts from; pass --few_shot_split=<block> too, or drop it"
                )
            return
        if not self.is_supernet:
            raise ValueError(
                "--few_shot_split splits a supernet into sub-supernets; drop it when retraining "
                "one architecture (--arch / --uniform_bits)"
            )
        if (
            not isinstance(self.few_shot_from, (str, os.PathLike))
            or not str(self.few_shot_from).strip()
        ):
            raise ValueError(
                f"--few_shot_split={self.few_shot_split} needs --few_shot_from=<the --workdir of "
                f"a finished one-shot supernet run of the same space>"
            )
        if self.sampling != "uniform":
            raise ValueError(
                f"--few_shot_split trains each sub-supernet by uniform sampling inside its part "
                f"of the space; drop --sampling={self.sampling}"
            )
        if os.path.abspath(self.few_shot_from) == os.path.abspath(str(self.workdir)):
            raise ValueError(
                f"--workdir must differ from --few_shot_from ({self.workdir!r}): the few-shot "
                f"run writes its sub-supernets into a folder of its own"
            )
        if self.few_shot_choice is not None and (
            isinstance(self.few_shot_choice, bool) or not isinstance(self.few_shot_choice, int)
        ):
            raise ValueError(f"few_shot_choice must be an int, got {self.few_shot_choice!r}")

    def to_dict(self) -> dict:
        """JSON-ready dict (the ``config.json`` of the workdir)."""
        d = dataclasses.asdict(self)
        d["workdir"] = None if self.workdir is None else os.fspath(self.workdir)
        return run_dir.normalized(d)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error); a ``config.json`` written
        before a setting was renamed reads back in today's terms
        (:func:`spos_tf.runs.run_dir.upgrade_config`)."""
        d = dict(run_dir.upgrade_config(d))
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        if isinstance(d.get("data"), dict):
            d["data"] = DataConfig(**d["data"])
        return cls(**d)


# Settings that do not change a run's result: a workdir may be resumed with other values for them.
NEUTRAL_FIELDS = config_flags.neutral_fields(TrainConfig) + config_flags.neutral_fields(
    DataConfig, "data."
)


# ------------------------------------------------------------------------------- flags
def define_flags(fv) -> None:
    """Defines the flags of ``python -m spos_tf.train`` on the ``absl.flags.FlagValues`` ``fv``:
    one per field of :class:`TrainConfig` and of its :class:`~spos_tf.data.DataConfig` (names,
    defaults, help texts and choices are the fields'), ``--ops`` and the space override flags."""
    config_flags.define_flags(TrainConfig, fv)
    config_flags.define_flags(DataConfig, fv)
    space_overrides.define(fv)
    for name, help_text in RETIRED_FLAGS.items():  # defined only to refuse them with the fix
        config_flags.define_retired(name, help_text, fv)


def flag_names() -> tuple:
    """The flags of :func:`define_flags` in the order of the config's fields (``--ops`` in place of
    ``space_overrides``, the data flags in place of ``data``), then the space override flags."""
    nested = {"space_overrides": (), "data": config_flags.flag_names(DataConfig)}
    return (
        tuple(
            name
            for f in dataclasses.fields(TrainConfig)
            for name in nested.get(f.name, (config_flags.flag_name(f),))
            if name is not None  # a setting filled in by code (few_shot_choice)
        )
        + space_overrides.FLAGS
    )


# Flags that older flag files (and older runs' flags.txt) may still set: name -> help text.
RETIRED_FLAGS = {
    "calib_batches": "Retired: calibration is counted in images, pass --calib_images "
    "(= the old batches x --eval_batch_size).",
}


def config_from_flags(fv) -> TrainConfig:
    """The :class:`TrainConfig` of the parsed flags ``fv`` (of :func:`define_flags`; not yet
    validated). Raises :class:`ConfigError` naming the replacement when a retired flag is set."""
    if fv["calib_batches"].present:
        n, batch = fv["calib_batches"].value, fv["eval_batch_size"].value
        images = f"{int(n) * batch}" if n.isdigit() else f"<batches x {batch}>"
        raise ConfigError(
            f"--calib_batches was replaced by --calib_images (calibration is counted in images "
            f"in every app): pass --calib_images={images} (the batches x --eval_batch_size="
            f"{batch}) instead of --calib_batches={n}"
        )
    overrides = space_overrides.from_flags(fv)
    config = config_flags.from_flags(
        TrainConfig, fv, space_overrides=overrides, data=config_flags.from_flags(DataConfig, fv)
    )
    if config.cost_bins is not None:  # numbers where they parse; validate() names the rest
        config = dataclasses.replace(config, cost_bins=tuple(map(_number, config.cost_bins)))
    return config


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def flags_text(fv) -> str:
    """The effective flags of the parsed ``fv``, one ``--name=value`` a line (usable as
    ``--flagfile``; a run's ``flags.txt``)."""
    lines = [fv[name].serialize() for name in flag_names() if fv[name].value is not None]
    return "\n".join(line for line in lines if line) + "\n"


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
        raise ValueError(
            f"--num_classes={num_classes} is below the {info.num_classes} classes of "
            f"data set {data.name!r}; drop --num_classes to use the data set's"
        )
    overrides["num_classes"] = int(num_classes)
    space = spaces.get(config.space, **overrides)
    arch = sampler = None
    if config.uniform_bits is not None:
        if not space.quantized:
            raise ValueError(
                f"--uniform_bits needs a quantized space (e.g. "
                f"resnet18_mixed_precision); {space.name!r} is a float space"
            )
        arch = costs_lib.uniform_arch(space, bits=config.uniform_bits)
    elif config.arch is not None:
        try:
            arch = arch_from_any(space, config.arch)
        except (ValueError, OSError) as e:
            raise ValueError(
                f"bad --arch={config.arch!r}: {e}. --arch takes the text form of an architecture "
                f"of space {space.name!r} ({space.num_blocks} blocks, e.g. "
                f"{str(space.make(**{k: [0] * space.num_blocks for k in space.searched_genes}))!r})"
                f" or the path of a JSON file with an 'arch' field"
            ) from None
    else:
        constraint, description = None, ""
        if config.min_macs is not None or config.max_macs is not None:
            constraint = macs_range(space, config.min_macs, config.max_macs)
            description = (
                f"MACs in [{config.min_macs or 0:g}, "
                f"{config.max_macs if config.max_macs is not None else math.inf:g}]"
            )
        if config.min_latency_ms is not None or config.max_latency_ms is not None:
            constraint = all_of(
                constraint,
                latency_range(
                    space, config.latency_table, config.min_latency_ms, config.max_latency_ms
                ),
            )
            description += (" and " if description else "") + (
                f"latency in [{config.min_latency_ms or 0:g}, "
                f"{config.max_latency_ms if config.max_latency_ms is not None else math.inf:g}]"
                f" ms"
            )
        if config.few_shot_choice is not None:  # a few-shot sub-supernet (spos_tf.train.few_shot)
            sampler = GeneSampler(
                space,
                config.seed,
                config.few_shot_split,
                config.few_shot_choice,
                constraint,
                description=description,
            )
        else:
            if config.few_shot_split is not None:
                split_choices(space, config.few_shot_split)  # names the valid blocks
            sampler = ArchSampler(space, config.seed, constraint, description=description)
        if config.momentum_split is not None:
            split_choices(space, config.momentum_split, "--momentum_split")
        if config.sample_from is not None:
            eval_sampler = sampler  # evaluation paths stay uniform over the space
            sampler = ListSampler(
                space, config.seed, read_archs_file(space, config.sample_from, "--sample_from")
            )
        sampler(0)  # fails fast (InfeasibleConstraintError, a ValueError) on an empty range
        if config.sampling != "uniform":
            # evaluation paths stay uniform: the same paths whichever way training samples
            eval_sampler = sampler
        if config.sampling == "cost_bins":
            sampler = CostBinSampler(
                space, config.seed, config.cost_bins or REFERENCE_BINS, config.bin_tries
            )
        elif config.sampling == "balanced":
            sampler = BalancedSampler(space, config.seed, config.cost_bins, config.bin_tries)
        elif config.sampling == "fair":
            sampler = FairSampler(space, config.seed)
        elif config.sampling == "distinct":
            sampler = DistinctSampler(space, config.seed, constraint, description=description)
        elif config.sampling == "rank_pairs":  # the constraint, if any, holds for both paths
            sampler = RankPairSampler(
                space,
                config.seed,
                constraint,
                config.rank_loss_margin,
                config.rank_loss_weight,
                description=description,
            )
    eval_split = config.eval_split or ("holdout" if config.is_supernet else "test")
    effective = dataclasses.replace(
        config,
        data=data,
        space_overrides=overrides,
        arch=None if arch is None else str(arch),
        uniform_bits=None,
        eval_split=eval_split,
        few_shot_from=(
            None if config.few_shot_from is None else os.path.abspath(config.few_shot_from)
        ),
        init_from=None if config.init_from is None else os.path.abspath(config.init_from),
        sample_from=None if config.sample_from is None else os.path.abspath(config.sample_from),
    )
    return Resolved(
        effective,
        space,
        arch,
        sampler,
        dict(info.num_examples),
        eval_sampler if config.sampling != "uniform" or config.sample_from is not None else None,
    )
