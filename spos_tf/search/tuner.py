"""The two KerasTuner roles of a search: the oracle that proposes architectures
(:func:`make_oracle`) and the tuner that scores them on the supernet (:class:`SupernetTuner`), with
what scoring needs: the restored supernet (:func:`load_supernet`), the calibration and held-out
data (:func:`build_eval_data`) and the evaluator (:func:`make_evaluator`).

The oracle (:mod:`spos_tf.search.oracle`) only proposes architectures under the constraint, never the same
twice; the tuner's :meth:`SupernetTuner.run_trial` sets the path, recalibrates BN and measures
held-out top-1 through :class:`~spos_tf.models.evaluate.PathEvaluator`; no model is built or trained.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from typing import Callable, Mapping

import keras_tuner as kt

from spos_tf.runs import run_dir
from spos_tf.search.oracle import EvolutionOracle, RandomSearchOracle
from spos_tf.search.config import ALGORITHMS, SEARCH_PRIORS, SearchConfig
from spos_tf.spaces.space import Architecture, SearchSpace

OBJECTIVE = "accuracy"
IDLE_WAIT_S = 0.2  # a distributed worker waiting for a generation to finish asks 5 times a second

__all__ = [
    "OBJECTIVE",
    "EvaluationError",
    "SupernetTuner",
    "make_oracle",
    "make_evaluator",
    "load_supernet",
    "load_supernet_config",
    "build_eval_data",
]


# ------------------------------------------------------------------------------- oracle side
def make_oracle(
    algorithm: str, config: SearchConfig, space: SearchSpace, constraint: Mapping | None = None
):
    """The oracle of ``algorithm`` over ``space`` (objective: held-out accuracy, maximised; with
    ``config.steer_by_score`` evolution's parents are the best by the mean rank of accuracy and
    the prior metrics of ``config.score``, which :class:`SupernetTuner` reports)."""
    common = dict(
        objective=kt.Objective(OBJECTIVE, "max"),
        max_trials=config.max_trials,
        constraint=dict(constraint) if constraint else None,
        hyperparameters=space.hyperparameters(),
        seed=config.seed,
        wait_for_tuners=config.wait_for_workers,
        equivalence=(
            (lambda values: space.canonical(space.from_values(values)))
            if config.skip_equivalent and space.cell_nodes
            else None
        ),
    )
    if algorithm == "evolution":
        oracle = EvolutionOracle(
            parent_metrics=(OBJECTIVE, *SEARCH_PRIORS[config.score])
            if config.steer_by_score
            else None,
            population_size=config.population_size,
            num_parents=config.num_parents,
            num_crossover=config.num_crossover,
            num_mutation=config.num_mutation,
            mutation_prob=config.mutation_prob,
            **common,
        )
    elif algorithm == "random":
        oracle = RandomSearchOracle(**common)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {ALGORITHMS}")
    oracle.verbose = 0  # KerasTuner's per-trial tables; the tuner shows a progress bar instead
    return oracle


# ------------------------------------------------------------------------------- tuner side
class EvaluationError(kt.errors.FatalError):
    """Scoring a candidate failed; the search stops (rerun to resume once fixed)."""


class SupernetTuner(kt.Tuner):
    """A KerasTuner ``Tuner`` whose trial scores one architecture on a trained supernet.

    ``run_trial`` converts the trial's values to an :class:`~spos_tf.spaces.space.Architecture`, calls
    ``evaluator(arch, index=k)`` (a :class:`~spos_tf.models.evaluate.PathEvaluator`: set path,
    recalibrate BN, held-out top-1) and returns ``{"accuracy": acc, "seconds": s}``. ``k`` is the
    candidate index, ``int(trial.trial_id)``: KerasTuner numbers trials 0, 1, ... in the order
    the oracle hands them out, and a resumed, retried or distributed candidate keeps its number
    (see :mod:`spos_tf.search.data`). An evaluator without an ``index`` parameter is called as
    ``evaluator(arch)``. It builds, trains and saves no model (``save_model``/``load_model`` do
    nothing), so KerasTuner's Keras fit path and its TensorBoard import are never used.

    Args:
      oracle: the oracle (an OracleClient replaces it on distributed workers).
      space: the search space of the supernet.
      evaluator: ``evaluator(arch, index=k) -> accuracy`` or ``evaluator(arch) -> accuracy``; None
        on a distributed chief (never runs trials).
      on_trial_end: ``callback(tuner, trial)`` after the oracle recorded a trial.
      prior: ``None``, or ``[(name, fn), ...]``: each trial also reports ``{name: fn(arch)}``
        for each (e.g. ``[("synflow", PriorCache)]`` for evolution steered by a combination; their
        cost is not in ``seconds``).
      **kwargs: ``directory``, ``project_name``, ``overwrite`` as for ``keras_tuner.Tuner``.

    Raises (from ``search``):
      EvaluationError: the evaluator raised; the candidate stays running in the oracle and is
        evaluated again when the search is resumed.
    """

    def __init__(
        self,
        oracle,
        space: SearchSpace,
        evaluator: Callable[[Architecture], float] | None,
        on_trial_end: Callable | None = None,
        prior: list | None = None,
        **kwargs,
    ):
        super().__init__(oracle=oracle, **kwargs)
        self.space, self.evaluator, self._callback = space, evaluator, on_trial_end
        self.prior = prior
        self._takes_index = evaluator is not None and _takes_index(evaluator)
        if self._is_worker():  # KerasTuner re-asks at once while a generation finishes elsewhere
            self.oracle.create_trial = _waiting_when_idle(self.oracle.create_trial)
        self.evaluated = 0  # candidates scored by this process
        self.last_accuracy = float("nan")

    def run_trial(self, trial, *args, **kwargs):
        if self.evaluator is None:
            raise EvaluationError("this tuner has no evaluator (a distributed chief only serves)")
        arch = self.space.from_values(trial.hyperparameters.values)
        index = {"index": int(trial.trial_id)} if self._takes_index else {}
        start = time.perf_counter()
        try:
            accuracy = float(self.evaluator(arch, **index))
        except Exception as e:
            raise EvaluationError(
                f"evaluating architecture {arch} (trial {trial.trial_id}) "
                f"failed: {type(e).__name__}: {e}"
            ) from e
        metrics = {OBJECTIVE: accuracy, "seconds": time.perf_counter() - start}
        for name, fn in self.prior or ():
            metrics[name] = float(fn(arch))
        self.evaluated += 1
        self.last_accuracy = accuracy
        return metrics

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self._callback is not None:
            self._callback(self, trial)

    def save_model(self, trial_id, model, step=0):
        """Nothing to save: candidates share the supernet's weights."""

    def load_model(self, trial):
        """No per-trial model exists; build one with ``spos_tf.build_standalone``."""
        return None


def _takes_index(evaluator) -> bool:
    """Whether ``evaluator`` accepts ``index=`` (a keyword parameter of that name, or ``**``)."""
    try:
        parameters = inspect.signature(evaluator).parameters.values()
    except (TypeError, ValueError):  # no signature to read: call it the plain way
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == "index" and p.kind is not p.POSITIONAL_ONLY)
        for p in parameters
    )


def _waiting_when_idle(create_trial, wait_s: float = IDLE_WAIT_S):
    """``create_trial`` that sleeps ``wait_s`` before returning an IDLE answer (no busy loop)."""

    def create(tuner_id):
        trial = create_trial(tuner_id)
        if trial.status == kt.engine.trial.TrialStatus.IDLE:
            time.sleep(wait_s)
        return trial

    return create


# ------------------------------------------------------------------------------- scoring
def load_supernet_config(supernet_dir: str, step: int | None = None) -> dict:
    """The ``config.json`` of the supernet run ``supernet_dir`` (reads one file), or of the first
    sub-supernet of a few-shot split (:func:`spos_tf.train.few_shot.load_run_config`: space and data
    are every sub-supernet's). With ``step`` (``--supernet_step``) it also checks that the run's
    checkpoint index lists a checkpoint of that step (reads the index), so that an app refuses a
    wrong step before it writes anything.

    Raises:
      run_dir.RunDirError: not a run directory, a stand-alone network's, or a few-shot split
        with a ``step``; run_dir.CheckpointError: no checkpoint of ``step`` (naming the saved
        steps).
    """
    from spos_tf.train import few_shot

    if step is not None and few_shot.is_few_shot(supernet_dir):
        raise run_dir.RunDirError(
            f"--supernet_step={step}: {supernet_dir!r} is a few-shot split, whose sub-supernets "
            f"train on from the one-shot run's step; score an earlier point of the one-shot run "
            f"itself (its --workdir), or drop --supernet_step"
        )
    try:
        if few_shot.is_few_shot(supernet_dir):
            return few_shot.load_run_config(supernet_dir)
        run_config = run_dir.load_run_config(supernet_dir)
    except run_dir.RunDirError as e:
        raise run_dir.RunDirError(f"--supernet_dir: {e}") from None
    if run_config.get("arch"):
        raise run_dir.RunDirError(
            f"--supernet_dir={supernet_dir!r} holds a stand-alone network "
            f"(arch {run_config['arch']!r}), not a supernet"
        )
    if step is not None:
        run_dir.checkpoint_of_step(run_dir.checkpoint_dir(supernet_dir), step)
    return run_config


def load_supernet(config: SearchConfig):
    """``(space, supernet, run_config, data_config)`` of ``config.supernet_dir``.

    Raises:
      run_dir.RunDirError, run_dir.CheckpointError: not a trained supernet run (a few-shot
        split holds several: :func:`make_evaluator` scores on them).
    """
    load_supernet_config(config.supernet_dir, config.supernet_step)
    from spos_tf.train import few_shot

    if few_shot.is_few_shot(config.supernet_dir):
        raise run_dir.RunDirError(
            f"--supernet_dir={config.supernet_dir!r} holds a few-shot split (one supernet per "
            f"sub-supernet): restore them with spos_tf.train.few_shot.restore_models, or score with "
            f"make_evaluator"
        )
    space, model, run_config = run_dir.restore_model(config.supernet_dir, step=config.supernet_step)
    return space, model, run_config, data_config(run_config, space, config.data_dir)


def data_config(run_config: dict, space: SearchSpace, data_dir: str | None = None):
    """The :class:`~spos_tf.data.DataConfig` of a supernet run's config at ``space``'s image
    size; ``data_dir`` (``--data_dir``) overrides its TFDS directory."""
    from spos_tf.data import DataConfig

    data = DataConfig(**run_config.get("data", {}))
    changes = {"image_size": space.image_size}
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return dataclasses.replace(data, **changes)


def _fits(num_images: int, image_size: int, cache_mb: int) -> bool:
    """Whether ``num_images`` float32 images fit in ``cache_mb`` MiB."""
    return num_images * image_size * image_size * 3 * 4 <= cache_mb * 2**20


def _cached(ds, num_images: int, image_size: int, cache_mb: int):
    """``ds`` cached in memory (filled now) when its float32 images fit in ``cache_mb`` MiB."""
    if not _fits(num_images, image_size, cache_mb):
        return ds
    import tensorflow as tf

    ds = ds.cache()
    ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    return ds


def build_eval_data(data, config: SearchConfig, image_size: int, seed: int = 0):
    """``(calib, holdout, images)`` for scoring candidates: ``images`` is how many held-out images
    each candidate is scored on (``config.holdout_images_per_candidate``, or all of them).

    Calibration, ``config.calib_stream="fixed"``: a data set, the first
    ``config.num_calib_batches`` batches of the ``calib`` role (training images, evaluation
    preprocessing, or with ``config.calib_augment`` the training augmentation seeded by
    ``(seed, position)``) in stored order, repeated if the split is smaller. ``"fresh"``: a
    :class:`~spos_tf.search.data.FreshCalibration`, a function ``index -> data set`` seeded by
    ``config.seed`` (``seed`` is not used).

    Held-out: a data set, the ``holdout`` role cut to ``config.holdout_images``; with
    ``config.holdout_images_per_candidate`` a :class:`~spos_tf.search.data.RotatingHoldout`,
    a function ``index -> data set`` of rotating slices of those images.

    The fixed calibration batches and the held-out images (every slice) are decoded once and
    kept in host memory when they fit in ``config.cache_mb``; a fresh stream never is.

    Raises:
      ValueError: ``holdout_images_per_candidate`` exceeds the held-out images.
    """
    from spos_tf.data import build_dataset, dataset_info
    from spos_tf.search.data import FreshCalibration, RotatingHoldout

    split_size = dataset_info(data).num_examples["holdout"]
    num_holdout = min(split_size, config.holdout_images or split_size)
    per_candidate = config.holdout_images_per_candidate
    if per_candidate:
        if per_candidate > num_holdout:
            raise ValueError(
                f"--holdout_images_per_candidate={per_candidate} exceeds the {num_holdout} "
                f"held-out images (--holdout_images, default the whole held-out split); lower "
                f"it to at most {num_holdout}, or pass 0 to score every candidate on all of them"
            )
        fits = _fits(num_holdout // per_candidate * per_candidate, image_size, config.cache_mb)
        holdout = RotatingHoldout(
            data,
            num_holdout,
            per_candidate,
            config.eval_batch_size,
            cache=(lambda ds, n: _cached(ds, n, image_size, config.cache_mb)) if fits else None,
        )
    else:
        holdout = build_dataset(data, "holdout", config.eval_batch_size, training=False, seed=seed)
        if num_holdout < split_size:
            holdout = holdout.unbatch().take(num_holdout).batch(config.eval_batch_size)
        holdout = _cached(holdout, num_holdout, image_size, config.cache_mb)
    if config.calib_stream == "fresh":
        calib = FreshCalibration(
            data,
            config.num_calib_batches,
            config.calib_batch_size,
            seed=config.seed,
            augment=config.calib_augment,
        )
        return calib, holdout, per_candidate or num_holdout
    calib = _training_batches(
        data, config, image_size, config.num_calib_batches, config.calib_augment, seed
    )
    return calib, holdout, per_candidate or num_holdout


def _training_batches(data, config: SearchConfig, image_size: int, n: int, augment, seed: int):
    """The first ``n`` batches of ``config.calib_batch_size`` training images (the ``calib``
    role, in stored order, repeated if the split is smaller; with ``augment`` the training
    augmentation seeded by ``(seed, position)``), cached when they fit in ``config.cache_mb``."""
    from spos_tf.data import build_dataset

    ds = build_dataset(
        data,
        "calib",
        config.calib_batch_size,
        training=False,
        seed=seed,
        repeat=True,
        drop_remainder=True,
        augment=augment,
    ).take(n)
    return _cached(ds, n * config.calib_batch_size, image_size, config.cache_mb)


def build_finetune_data(data, config: SearchConfig, image_size: int, seed: int = 0):
    """The batches of ``--finetune_steps`` (None when it is 0): the first ``finetune_steps``
    batches of ``config.calib_batch_size`` training images (the ``calib`` role, in stored order,
    repeated if the split is smaller) with the training augmentation seeded by
    ``(seed, position)``, the same for every candidate; kept in host memory when they fit in
    ``config.cache_mb``."""
    if not config.finetune_steps:
        return None
    return _training_batches(data, config, image_size, config.finetune_steps, True, seed)


def make_evaluator(config: SearchConfig):
    """A :class:`~spos_tf.models.evaluate.PathEvaluator` on the restored supernet of ``config``, with
    its calibration and held-out data (restores the checkpoint; fills the caches).

    A few-shot ``config.supernet_dir`` (:mod:`spos_tf.train.few_shot`) gives a
    :class:`~spos_tf.train.few_shot.FewShotEvaluator`: one such evaluator per sub-supernet, all on the
    same data, each candidate scored by the sub-supernet owning it (K supernets in memory)."""
    from spos_tf.models.evaluate import PathEvaluator

    from spos_tf.train import few_shot
    from spos_tf.models import precision

    layout = None
    with precision.policy_scope(config.precision):  # the supernet computes in it for good
        if few_shot.is_few_shot(config.supernet_dir):
            load_supernet_config(config.supernet_dir, config.supernet_step)  # refuses a step
            layout, space, supernets, run_config = few_shot.restore_models(config.supernet_dir)
            data = data_config(run_config, space, config.data_dir)
        else:
            space, supernet, run_config, data = load_supernet(config)
    calib, holdout, _ = build_eval_data(data, config, space.image_size, seed=0)
    finetune = build_finetune_data(data, config, space.image_size, seed=0)

    def evaluator(model):
        finetuner = None
        if finetune is not None:
            from spos_tf.models.finetune import PathFinetuner

            finetuner = PathFinetuner(model, config.finetune_steps, config.finetune_lr)
        return PathEvaluator(
            model,
            calib,
            holdout,
            config.num_calib_batches,
            calib_mode=config.calib_mode,
            finetuner=finetuner,
            finetune_ds=finetune,
        )

    if layout is None:
        return evaluator(supernet)
    return few_shot.FewShotEvaluator(layout, space, {c: evaluator(m) for c, m in supernets.items()})
