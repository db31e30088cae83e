"""The settings of a search and the constraint they define: :class:`SearchConfig` (whose fields are
the flags of ``python -m spos_tf.search``), BitOps budgets, and the oracle's cost constraint.

Each setting is written once, as a field: its default, help text, bounds and choices are the flag's
(:mod:`spos_tf.runs.config_flags`) and the checks of :meth:`SearchConfig.validate`; the settings that may
change when a search is resumed are the fields declared ``neutral`` (:data:`NEUTRAL`).

Imports no TensorFlow (the app defines its flags from this module before TensorFlow loads).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Collection, Mapping, Optional

from spos_tf import costs as costs_lib
from spos_tf.rank import report as rank_report
from spos_tf.runs import config_flags, run_dir
from spos_tf.runs.choices import CALIB_MODES, PRECISIONS, SUPERNET_STEP_HELP, calib_batches
from spos_tf.runs.config_flags import check_fields, field, neutral_fields
from spos_tf.spaces.space import Architecture, SearchSpace

ALGORITHMS = ("evolution", "random")
ALGORITHM_CHOICES = ALGORITHMS + ("both",)
# --score: what picks best.json (rank_average of spos_tf.rank.stats for a combination), the same
# scores as spos_tf.rank --score; SEARCH_PRIORS: each combination's priors, their history.csv columns.
SEARCH_SCORES = rank_report.SCORES
SEARCH_PRIORS = rank_report.PRIORS
ALGORITHM_COLORS = {"evolution": "tab:red", "random": "tab:blue"}  # in every plot of a search
# Where each candidate's calibration images come from (spos_tf.search.data).
CALIB_STREAMS = ("fixed", "fresh")
# Constraint name -> cost of an architecture. The flag is --max_<name>.
COSTS: dict = {
    "macs": lambda table, arch: table.macs(arch),
    "params": lambda table, arch: table.params(arch),
    "bitops": lambda table, arch: table.bitops(arch),
    "latency_ms": lambda table, arch: table.latency_ms(arch),  # needs --latency_table
}

__all__ = [
    "SearchConfig",
    "ALGORITHMS",
    "NEUTRAL",
    "SEARCH_SCORES",
    "SEARCH_PRIORS",
    "COSTS",
    "budget_bits",
    "resolve_limits",
    "build_constraint",
    "arch_costs",
]


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Settings of one search (the flags of ``spos_tf.search``; defaults = the paper's).

    Attributes:
      supernet_dir: the ``--workdir`` of a finished ``spos_tf.train`` supernet run.
      supernet_step: score the supernet's checkpoint of this training step (one its checkpoint
        index still lists) instead of its latest; None: the latest. One-shot runs only (a
        few-shot split is refused). Recorded in ``best.json``; a search resumed with another
        step is refused.
      workdir: where the search writes (see :mod:`spos_tf.search.results`).
      algorithm: ``"evolution"``, ``"random"`` or ``"both"`` (evolution, then random search with
        the same budget and constraint: the paper's Figure 3).
      score: what picks ``best.json`` among the evaluated candidates: ``"supernet"`` (the
        highest supernet accuracy), or a labelled combination with a prior: the best mean of its
        ranks by accuracy and by the prior among all evaluated candidates
        (:func:`spos_tf.search.results.best_index`), the prior being MACs (``"supernet+macs"``)
        or the zero-cost proxies of :mod:`spos_tf.rank.zero_cost` on each candidate's untrained
        stand-alone network, SynFlow (``"supernet+synflow"``), NASWOT on 128 training images
        (``"supernet+naswot"``) or both (``"supernet+synflow+naswot"``: the mean of three ranks),
        cached in ``<workdir>/synflow.json``, ``naswot.json``; about 1 s per candidate and proxy on
        2 CPU cores, and a finished search rerun with it computes them for the stored candidates
        without evaluating any again. The oracles are steered by accuracy alone unless
        ``steer_by_score``.
      steer_by_score: evolution chooses its parents by ``score``'s combination too (the mean of
        each completed candidate's ranks by supernet accuracy and by each prior, among all
        completed candidates; the tuner reports the priors as trial metrics) instead of by
        accuracy alone; needs a combination ``score``. Random search has no parents: unaffected.
      skip_equivalent: cell spaces: dedupe candidates by :meth:`SearchSpace.canonical` (the oracle's
        ``equivalence``), so no two evaluations score the same function.
      population_size, num_parents, num_crossover, num_mutation, mutation_prob: evolution
        (paper: 50, 10, 25, 25, 0.1).
      max_trials: candidates evaluated per algorithm (paper: 20 generations x 50 = 1000).
      seed: the oracles' seed; a search is a function of it and the supernet.
      max_macs, max_params, max_bitops: hard constraints (None: none); ``max_bitops`` needs a
        quantized space.
      latency_table: a latency lookup table of the supernet's space (``spos_tf.latency build``):
        history.csv, best.json and search.png then carry the predicted ``latency_ms``.
      max_latency_ms: hard constraint on the predicted latency (needs ``latency_table``).
      archs_file: a text file of architectures (one per line, ``#`` comments; e.g. a shrunk space
        written by ``benchmarks/shrink_space.py``): a hard constraint, the search proposes only
        those (read when the search starts; a missing file or a line that is not an
        architecture of the supernet's space is a ``ValueError`` naming it).
      bitops_budget: ``"kWkA"`` (e.g. ``"3w3a"``): a BitOps limit equal to the BitOps of the
        uniform k-bit network of the supernet's space, ``costs.uniform_bitops(space, k)`` (the
        budgets of the paper's Table 6); resolved by :func:`resolve_limits` once the space is
        known. Exclusive with ``max_bitops``; needs a quantized space.
      bitops_convention: ``"ours"`` (every layer, the 8-bit first conv and FC included) or
        ``"paper"`` (the choice blocks only: Table 6's counting, see :mod:`spos_tf.costs`); sets
        what ``max_bitops``, ``bitops_budget``, ``history.csv`` and ``best.json`` count. A kWkA
        budget selects the same architectures either way (the fixed layers cost the same in all).
      calib_images, calib_batch_size: BN recalibration per candidate on
        ``ceil(calib_images / calib_batch_size)`` batches of the supernet's training split
        (default 25,600 = the reference's 200 batches of 128): with ``calib_stream="fixed"`` the
        first ones in stored order (TFDS stores ImageNet shuffled), the same images for every
        candidate.
      calib_augment: the calibration images go through the training augmentation (the
        reference's choice), each seeded by its position, so under ``calib_stream="fixed"`` every
        candidate still sees the same augmented images; default: evaluation preprocessing.
      calib_stream: ``"fixed"`` (default: the same first images for every candidate, as above)
        or ``"fresh"`` (the release's shuffled loader whose iterator carries on: candidate ``k``
        recalibrates on the next ``num_calib_batches`` shuffled batches of an endless seeded
        stream over the training split, a function of ``(seed, k)`` only, so a resumed or
        distributed search reads the same batches; never cached). ``k`` is the trial number.
        See :mod:`spos_tf.search.data` for the stream, its cost and how it differs from the
        release's.
      calib_mode: ``"exact"`` (cumulative average over the batches; default) or ``"ema"`` (the
        reference: reset the statistics, then an exponential average with Keras momentum 0.9) or
        ``"batch_stats"`` (no recalibration: each scored batch normalised by its own statistics,
        as NAS-Bench-201's authors score supernets); see :mod:`spos_tf.models.evaluate`.
      holdout_images: evaluate on the first this many held-out images (None: the whole split).
      holdout_images_per_candidate: 0 (default, the paper's): every candidate on all
        ``holdout_images``; ``N > 0``: candidate ``k`` (the trial number) on slice
        ``k mod (holdout_images // N)`` of ``N`` consecutive images of them, about
        ``holdout_images / N`` times cheaper per evaluation pass, at the price of slice-to-slice
        noise between candidates (the release: 8,000 of 50,000 images per candidate). See
        :mod:`spos_tf.search.data`.
      eval_batch_size: held-out batch size.
      data_dir: TFDS data directory (None: the supernet run's).
      cache_mb: keep the preprocessed calibration and held-out batches in host memory when they
        fit in this many MiB (decoded once instead of once per candidate); 0 disables.
      overwrite: delete a previous search in ``workdir`` and start over.
      progress: show a progress bar with the best accuracy so far.
      wait_for_workers: distributed search, chief: hand out no candidate until this many workers
        have asked for one (``EvolutionOracle(wait_for_tuners=...)``; 0: don't wait). Refused in a
        single-process search.
      seeds: run the whole search once per seed (``seed`` is then ignored) into
        ``<workdir>/seed_<s>/`` and write the comparison over seeds into ``workdir``: Figure 3
        with a band (``search.png``), ``seeds.json`` and ``best.json`` (see
        :func:`spos_tf.search.run.run_seeds`). Empty: one search with ``seed``. Resuming with
        more seeds (all stored ones still listed) adds their searches and keeps the stored ones.

    Fields marked ``neutral`` may differ when a search in a workdir is resumed or extended
    (``max_trials`` may grow, ``algorithm`` may change).
    """

    supernet_dir: Optional[str] = field(None, "The --workdir of a trained spos_tf.train supernet.")
    supernet_step: Optional[int] = field(None, SUPERNET_STEP_HELP, low=1)
    workdir: Optional[str] = field(
        None, "Search directory: oracle state, history.csv, best.json, search.png.", neutral=True
    )
    algorithm: str = field(
        "evolution",
        "both: evolution, then random search with the same budget (Figure 3).",
        choices=ALGORITHM_CHOICES,
        neutral=True,
    )
    score: str = field(
        "supernet",
        "What picks best.json among the evaluated candidates: supernet (the highest supernet "
        "accuracy, the paper), supernet+macs, supernet+synflow, supernet+naswot or "
        "supernet+synflow+naswot (the best mean of its ranks by supernet accuracy and by MACs, or "
        "by the SynFlow / NASWOT zero-cost proxies of its untrained network, among all evaluated "
        "candidates: a combination with priors, recorded as such in best.json; the oracles are "
        "steered by accuracy alone unless --steer_by_score; each proxy costs about 1 s per "
        "candidate, cached in <workdir>/synflow.json, naswot.json; NASWOT scores 128 training "
        "images).",
        choices=SEARCH_SCORES,
        neutral=True,
    )
    steer_by_score: bool = field(
        False,
        "Evolution: choose the parents by --score's combination too (the best mean rank by "
        "supernet accuracy and by its priors among all candidates evaluated so far) instead "
        "of by supernet accuracy alone; needs a combined --score (supernet+macs, "
        "supernet+synflow, ...).",
    )
    skip_equivalent: bool = field(
        False,
        "Cell spaces: never propose a candidate whose cell computes the same function on the "
        "supernet as one already proposed (SearchSpace.canonical: ops on edges that leave a "
        "zero-valued node or enter a node that reaches no output count as none), so no two "
        "evaluations score the same network; no effect in chain spaces.",
    )
    population_size: int = field(50, "Evolution: candidates per generation.", low=1)
    num_parents: int = field(10, "Evolution: top-k parents.", low=1)
    num_crossover: int = field(25, "Evolution: children by crossover per generation.", low=0)
    num_mutation: int = field(25, "Evolution: children by mutation per generation.", low=0)
    mutation_prob: float = field(
        0.1, "Evolution: per-gene mutation probability.", low=0.0, high=1.0
    )
    max_trials: int = field(1000, "Candidates evaluated per algorithm.", low=1, neutral=True)
    seed: int = field(0, "Oracle seed.", low=0)
    max_macs: Optional[float] = field(
        None, "Constraint: multiply-accumulates (the paper's FLOPs).", low=0.0, low_open=True
    )
    max_params: Optional[float] = field(
        None, "Constraint: parameters of the stand-alone network.", low=0.0, low_open=True
    )
    max_bitops: Optional[float] = field(
        None, "Constraint: BitOps (quantized spaces only).", low=0.0, low_open=True
    )
    max_latency_ms: Optional[float] = field(
        None, "Constraint: latency predicted by --latency_table (ms).", low=0.0, low_open=True
    )
    archs_file: Optional[str] = field(
        None,
        "Constraint: search only the architectures this file lists, one per line in text "
        "form (e.g. a shrunk space from benchmarks/shrink_space.py --out).",
    )
    latency_table: Optional[str] = field(
        None,
        "Latency lookup table of the supernet's space "
        "(python -m spos_tf.latency build); adds latency_ms to "
        "the outputs.",
    )
    bitops_budget: Optional[str] = field(
        None,
        "Constraint: BitOps of the uniform kWkA network "
        "of the space, e.g. 3w3a (quantized spaces only; instead "
        "of --max_bitops).",
    )
    bitops_convention: str = field(
        "ours",
        "BitOps counting: ours (every layer, 8-bit first conv "
        "and FC included) or paper (choice blocks only, Table 6's "
        "count; its G is 2^30).",
        choices=costs_lib.BITOPS_CONVENTIONS,
    )
    calib_images: int = field(
        25_600, "BN recalibration images per candidate (the reference: 200 batches of 128).", low=1
    )
    calib_batch_size: int = field(128, "BN recalibration batch size.", low=1)
    calib_augment: bool = field(
        False,
        "Recalibrate BN on training images with the training "
        "augmentation (as the reference), the same augmented images for "
        "every candidate; default: un-augmented (evaluation "
        "preprocessing).",
    )
    calib_stream: str = field(
        "fixed",
        "BN recalibration images: fixed (every candidate: the same first --calib_images training "
        "images in stored order; default) or fresh (candidate k: the next --calib_images images "
        "of a seeded, shuffled stream over the training split that carries on across candidates, "
        "as the release's loader; a function of --seed and k, so resumable; never cached).",
        choices=CALIB_STREAMS,
    )
    calib_mode: str = field(
        "exact",
        "BN recalibration: exact cumulative average (default), or "
        "the reference's reset + exponential average with Keras momentum 0.9 "
        "(PyTorch 0.1), or batch_stats (no recalibration: every scored batch is "
        "normalised by its own statistics; mind --eval_batch_size).",
        choices=CALIB_MODES,
    )
    finetune_steps: int = field(
        0,
        "Before scoring, train each candidate's path alone for this many steps from its "
        "inherited weights (masked SGD with momentum 0.9, no weight decay, constant "
        "--finetune_lr; batches of --calib_batch_size training images with the training "
        "augmentation, the same images for every candidate), then recalibrate BN and score; every "
        "weight is restored afterwards. Costs that many training steps per candidate. 0: off "
        "(the paper's).",
        low=0,
    )
    finetune_lr: float = field(
        0.05, "Learning rate of --finetune_steps (constant).", low=0.0, low_open=True
    )
    holdout_images: Optional[int] = field(
        None,
        "Evaluate on the first this many held-out images (default: the whole held-out split).",
        low=1,
    )
    holdout_images_per_candidate: int = field(
        0,
        "Score candidate k on slice k mod (H // N) of N consecutive images of the H held-out "
        "images (--holdout_images): about H/N times cheaper per candidate, different images for "
        "different candidates (the release: 8000 of 50000). 0: all H for every candidate (the "
        "paper's).",
        low=0,
    )
    eval_batch_size: int = field(256, "Held-out evaluation batch size.", low=1, neutral=True)
    data_dir: Optional[str] = field(
        None, "TFDS data directory (default: the supernet run's).", neutral=True
    )
    cache_mb: int = field(
        4096,
        "Keep preprocessed calibration and held-out images in memory when "
        "they fit in this many MiB (0: never).",
        low=0,
        neutral=True,
    )
    overwrite: bool = field(False, "Delete a previous search in --workdir.", neutral=True)
    precision: str = field(
        "float32",
        "Compute dtype of the supernet while scoring candidates "
        "(mixed_float16 for GPUs, mixed_bfloat16 for TPUs and bfloat16 CPUs); "
        "any precision scores a supernet trained in any other.",
        choices=PRECISIONS,
    )
    progress: bool = field(True, "Show a progress bar with the best accuracy so far.", neutral=True)
    wait_for_workers: int = field(
        0,
        "Distributed search, chief: hand out no candidate until this "
        "many workers have asked (KerasTuner's chief exits once every "
        "worker it has seen is done, so a late worker would find no "
        "chief). 0: don't wait.",
        low=0,
        neutral=True,
    )
    seeds: tuple = field(
        (),
        "Run the whole search once per seed (e.g. 0,1,2) into "
        "<workdir>/seed_<s>/ and compare evolution with random search over seeds "
        "(search.png with bands, seeds.json); --seed is then ignored. Rerun with more seeds "
        "to add searches (finished seeds are kept).",
    )

    def __post_init__(self):
        seeds = self.seeds if self.seeds is not None else ()
        try:
            seeds = tuple(int(s) for s in seeds)
        except (TypeError, ValueError):
            raise ValueError(
                f"--seeds must be a list of integers, e.g. 0,1,2; got {self.seeds!r}"
            ) from None
        object.__setattr__(self, "seeds", seeds)

    @property
    def algorithms(self) -> tuple:
        return ALGORITHMS if self.algorithm == "both" else (self.algorithm,)

    @property
    def limits(self) -> dict:
        """``{cost name: limit}`` of the constraints that are set as numbers (without
        ``bitops_budget``, which needs the space: see :func:`resolve_limits`)."""
        return {
            name: getattr(self, f"max_{name}")
            for name in COSTS
            if getattr(self, f"max_{name}") is not None
        }

    @property
    def num_calib_batches(self) -> int:
        """Calibration batches per candidate: ``ceil(calib_images / calib_batch_size)``
        (:func:`spos_tf.runs.choices.calib_batches`, the rule of every app)."""
        return calib_batches(self.calib_images, self.calib_batch_size)

    def validate(self) -> "SearchConfig":
        """Checks every field without touching files; returns ``self``. Types, bounds and
        choices come from the fields' metadata (:func:`~spos_tf.runs.config_flags.check_fields`); the
        rules between fields are written here.

        Raises:
          ValueError: naming the flag and quoting the bad value.
        """
        for name in ("supernet_dir", "workdir"):
            value = getattr(self, name)
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                raise ValueError(f"--{name} is required")
        if os.path.abspath(self.supernet_dir) == os.path.abspath(self.workdir):
            raise ValueError(
                f"--workdir must differ from --supernet_dir ({self.workdir!r}): the "
                f"search writes its own folder"
            )
        self._check_scoring_data()
        check_fields(
            dataclasses.replace(
                self, supernet_dir=os.fspath(self.supernet_dir), workdir=os.fspath(self.workdir)
            )
        )
        if self.num_crossover + self.num_mutation > self.population_size:
            raise ValueError(
                f"--num_crossover + --num_mutation ({self.num_crossover} + "
                f"{self.num_mutation}) must not exceed --population_size "
                f"({self.population_size})"
            )
        if self.max_latency_ms is not None and not self.latency_table:
            raise ValueError(
                f"--max_latency_ms={self.max_latency_ms:g} needs --latency_table (a "
                f"table built by python -m spos_tf.latency build)"
            )
        if self.latency_table and not os.path.isfile(self.latency_table):
            raise ValueError(
                f"--latency_table={self.latency_table!r} does not exist; build it "
                f"with python -m spos_tf.latency build --space=... --out=..."
            )
        if self.steer_by_score and self.score not in SEARCH_PRIORS:
            raise ValueError(
                f"--steer_by_score steers evolution by a combination score, but --score is "
                f"{self.score!r}: pass --score={' or --score='.join(SEARCH_PRIORS)}, or drop "
                f"--steer_by_score"
            )
        if self.steer_by_score and self.algorithm == "random":
            raise ValueError(
                "--steer_by_score steers evolution's choice of parents; random search has none: "
                "pass --algorithm=evolution or both, or drop --steer_by_score"
            )
        if self.finetune_steps and self.precision == "mixed_float16":
            raise ValueError(
                "--finetune_steps trains without loss scaling, which float16 gradients need: "
                "pass --precision=float32 or mixed_bfloat16, or drop --finetune_steps"
            )
        if any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must be distinct integers >= 0, got {list(self.seeds)}")
        if self.bitops_budget is not None:
            budget_bits(self.bitops_budget)
            if self.max_bitops is not None:
                raise ValueError(
                    f"pass one of --max_bitops ({self.max_bitops:g}) and "
                    f"--bitops_budget ({self.bitops_budget!r}), not both"
                )
        return self

    def _check_scoring_data(self) -> None:
        """The checks of ``calib_stream`` and ``holdout_images_per_candidate``, with the fix in
        the message (against the whole held-out split when ``holdout_images`` is None: once the
        data is open, by :func:`spos_tf.search.tuner.build_eval_data`)."""
        if self.calib_stream not in CALIB_STREAMS:
            raise ValueError(
                f"--calib_stream must be fixed (every candidate recalibrates on the same first "
                f"--calib_images images) or fresh (each candidate on the next images of a seeded, "
                f"shuffled stream); got {self.calib_stream!r}"
            )
        n = self.holdout_images_per_candidate
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(
                f"--holdout_images_per_candidate must be an integer >= 0 (0: every candidate on "
                f"all held-out images; N: candidate k on a rotating slice of N of them); got {n!r}"
            )
        h = self.holdout_images
        if n and isinstance(h, int) and not isinstance(h, bool) and n > h:
            raise ValueError(
                f"--holdout_images_per_candidate={n} exceeds --holdout_images={h}: a slice "
                f"holds at most the images it rotates over; lower it to at most {h} (e.g. "
                f"{max(1, h // 6)} for 6 slices), raise --holdout_images, or pass 0 to score "
                f"every candidate on all {h}"
            )

    def to_dict(self) -> dict:
        """The JSON-ready settings (``search_config.json``)."""
        d = dataclasses.asdict(self)
        for name in ("supernet_dir", "workdir"):
            d[name] = None if d[name] is None else os.fspath(d[name])
        return run_dir.normalized(d)


# Settings that may differ when a search in a workdir is resumed or extended.
NEUTRAL = neutral_fields(SearchConfig)


def define_flags(fv) -> None:
    """Defines the flags of ``python -m spos_tf.search`` on the ``absl.flags.FlagValues`` ``fv``:
    one per field of :class:`SearchConfig`, with its default (the paper's evolutionary search),
    help text and choices."""
    config_flags.define_flags(SearchConfig, fv)


def config_from_flags(fv) -> SearchConfig:
    """The :class:`SearchConfig` of the parsed flags ``fv`` (not yet validated)."""
    return config_flags.from_flags(SearchConfig, fv)


_BUDGET = re.compile(r"^\s*(\d+)\s*w\s*(\d+)\s*a\s*$", re.IGNORECASE)


def budget_bits(budget: str) -> int:
    """``k`` of a ``"kWkA"`` BitOps budget (``"3w3a"`` -> 3; case-insensitive).

    Raises:
      ValueError: not of the form kWkA with equal weight and activation bits in 1..32.
    """
    match = _BUDGET.match(budget) if isinstance(budget, str) else None
    if match is None or match.group(1) != match.group(2) or not 1 <= int(match.group(1)) <= 32:
        raise ValueError(
            f"--bitops_budget must be kWkA with the same k for weights and "
            f"activations (e.g. 2w2a, 3w3a, 4w4a), got {budget!r}"
        )
    return int(match.group(1))


def resolve_limits(config: SearchConfig, space: SearchSpace) -> dict:
    """``config.limits`` with ``bitops_budget`` turned into ``{"bitops": uniform_bitops(space,
    k)}`` (the BitOps of the uniform kWkA network, first conv and last FC at 8 bits).

    Raises:
      ValueError: ``bitops_budget`` for a float space.
    """
    limits = dict(config.limits)
    if config.bitops_budget is not None:
        if not space.quantized:
            raise ValueError(
                f"--bitops_budget needs a quantized space; {space.name!r} searches "
                f"float architectures (use --max_macs)"
            )
        limits["bitops"] = float(
            costs_lib.uniform_bitops(
                space, budget_bits(config.bitops_budget), convention=config.bitops_convention
            )
        )
    return limits


def build_constraint(
    space: SearchSpace,
    limits: Mapping[str, float],
    latency_table: Optional[str] = None,
    bitops_convention: str = "ours",
    allowed: Optional[Collection[Architecture]] = None,
) -> dict:
    """The oracle constraint ``{name: (cost_fn(values) -> float, limit)}`` of ``limits``, and,
    with ``allowed``, ``"archs_file"``: 0 for an architecture in ``allowed``, 1 otherwise, limit 0.

    Args:
      space: the search space (costs come from its :class:`~spos_tf.costs.CostTable`).
      limits: ``{cost name: max value}`` with names in :data:`COSTS` (``macs``, ``params``,
        ``bitops``, ``latency_ms``).
      latency_table: the latency lookup table ``latency_ms`` needs.
      bitops_convention: how ``bitops`` counts (``costs.BITOPS_CONVENTIONS``).
      allowed: the only architectures the search may propose (``--archs_file``); None: all.

    Raises:
      ValueError: an unknown cost name, ``bitops`` for a float space, a latency table that does
        not cover ``space``.
    """
    table = costs_lib.table(space, latency_table)
    out = {}
    for name, limit in limits.items():
        if name not in COSTS:
            raise ValueError(f"unknown constraint {name!r}; known: {sorted(COSTS)}")
        if name == "bitops" and not space.quantized:
            raise ValueError(
                f"--max_bitops needs a quantized space; {space.name!r} searches "
                f"float architectures (use --max_macs)"
            )
        cost = _cost_fn(name, bitops_convention)
        out[name] = (
            lambda values, cost=cost: float(cost(table, space.from_values(values))),
            float(limit),
        )
    if allowed is not None:
        allowed = frozenset(allowed)
        out["archs_file"] = (
            lambda values: 0.0 if space.from_values(values) in allowed else 1.0,
            0.0,
        )
    return out


def _cost_fn(name: str, bitops_convention: str = "ours"):
    if name == "bitops" and costs_lib.check_convention(bitops_convention) == "paper":
        return lambda table, arch: table.bitops(arch, include_fixed=False)
    return COSTS[name]


def arch_costs(
    space: SearchSpace, arch: Architecture, bitops_convention: str = "ours", table=None
) -> dict:
    """``CostTable.all(arch)`` (of ``table``, default the space's) with ``bitops`` counted by
    ``bitops_convention``."""
    out = (table or costs_lib.table(space)).all(arch)
    if "bitops" in out:
        out["bitops"] = costs_lib.bitops(space, arch, convention=bitops_convention)
    return out
