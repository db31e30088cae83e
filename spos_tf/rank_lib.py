"""Does the supernet rank architectures? The library behind ``python -m spos_tf.rank``.

For N architectures of a trained supernet's space, it compares the accuracy of each path with
inherited weights (exactly as the search scores candidates:
:func:`spos_tf.search_tuner.make_evaluator`, BN recalibrated, held-out split) with the test accuracy
of the same architecture trained from scratch (a ``spos_tf.train`` run with a retraining recipe,
``retrain_seeds`` seeds each), and reports Kendall's tau, Spearman's rho and Pearson's r with
bootstrap intervals, top-k overlap, and the seed noise against the spread of the stand-alone
accuracies (:mod:`spos_tf.rank_stats`).

Example::

    config = RankConfig(supernet_dir="/tmp/qs", workdir="/tmp/qs_rank",
                        retrain_flagfile="flags/tiny_retrain.cfg", num_archs=20, retrain_seeds=2)
    result = run(config)      # result["stats"]["kendall_tau"]["value"], ...

Layout of ``workdir``::

    rank_config.json              the settings (a rerun with other settings is refused)
    archs.json                    the selected architectures with their costs (fixed by the seed)
    archs/<i>/supernet.json       arch i's supernet accuracy (held-out split)
    archs/<i>/seed_<k>/           arch i trained from scratch with seed k (a spos_tf.train run)
    ranking.csv, ranking.json, ranking.png, hparams/   (see :func:`write_outputs`)

Resuming and splitting: each unit of work (one supernet score, one from-scratch training) is its
own file or run directory; finished ones are skipped, an interrupted training resumes from its last
checkpoint, so a kill loses at most the steps since that checkpoint. ``shard="i/n"`` does only the
architectures ``j`` with ``j % n == i`` (run one process per shard, on any hosts sharing the
workdir); every call writes the outputs from what is finished so far, and ``merge=True`` only
writes them. ``ranking.json`` says whether every architecture was finished (``"complete"``).

Costs: one supernet restore and ``N`` candidate scorings (as in the search), then
``N x retrain_seeds`` trainings of the retraining recipe. On ImageNet with ``flags/rank.cfg`` that
is the dominant cost: dozens of GPU-days; on the embedded digits minutes.

Why one module of this size: the ranking run (settings, scoring, training, resuming, sharding);
selection is :mod:`spos_tf.rank_select` and the results :mod:`spos_tf.rank_report`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import time
from typing import Optional

from spos_tf import costs as costs_lib
from spos_tf import run_dir
from spos_tf.config_flags import check_fields, field, neutral_fields
from spos_tf.progress import ProgressBar, format_duration

# The selection and the results have their own modules; their names stay importable from here.
from spos_tf.rank_report import (
    ARCHS_DIR,
    CSV_FILE,
    HPARAMS_DIR,
    JSON_FILE,
    PLOT_FILE,  # noqa: F401
    SUPERNET_FILE,
    _final_accuracy,
    _read_json,
    arch_dir,
    collect,
    csv_text,  # noqa: F401
    describe,  # noqa: F401
    write_outputs,
    write_plot,  # noqa: F401
)
from spos_tf.rank_select import (
    SELECTIONS,
    parse_shard,
    read_archs_file,  # noqa: F401
    select,
    select_from_history,  # noqa: F401
    select_stratified,  # noqa: F401
    shard_members,
)

CONFIG_FILE = "rank_config.json"
ARCHS_FILE = "archs.json"
# Everything a ranking writes; overwrite deletes exactly these.
RANK_ENTRIES = (CONFIG_FILE, ARCHS_FILE, ARCHS_DIR, CSV_FILE, JSON_FILE, PLOT_FILE, HPARAMS_DIR)


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Settings of one ranking run (the flags of ``spos_tf.rank``)."""

    supernet_dir: Optional[str] = field(
        None, "The --workdir of a trained spos_tf.train supernet run."
    )
    workdir: Optional[str] = field(
        None, "Where the ranking writes (see spos_tf.rank_lib).", neutral=True
    )
    retrain_flagfile: Optional[str] = field(
        None,
        "Flag file of spos_tf.train giving the from-scratch "
        "recipe (e.g. flags/retrain.cfg); its --arch, --seed and "
        "--workdir are set per run, evaluation is on the test split.",
    )
    search_flagfile: Optional[str] = field(
        None,
        "Flag file of spos_tf.search whose scoring "
        "settings (calibration images, held-out images, batch "
        "sizes) score the paths; default: the search's "
        "defaults (the paper's).",
    )
    num_archs: int = field(20, "Architectures to rank.", low=2)
    select: str = field(
        "stratified",
        "stratified: random architectures spread evenly over the "
        "MACs range of the space; file: the architectures of --archs_file (one "
        "per line, text form); history: the best and worst --num_archs/2 of a "
        "search's history.csv (--archs_file).",
        choices=SELECTIONS,
    )
    archs_file: Optional[str] = field(
        None,
        "--select=file: a text file of architectures; --select=history: a search's history.csv.",
    )
    seed: int = field(
        0,
        "Seeds the selection; the from-scratch seeds are the recipe's --seed + 0..retrain_seeds-1.",
        low=0,
    )
    retrain_seeds: int = field(1, "From-scratch trainings (seeds) per architecture.", low=1)
    pool_size: int = field(
        5000, "--select=stratified: random architectures the strata are filled from.", low=1
    )
    shard: str = field(
        "0/1", "i/n: this process does architectures j with j % n == i.", neutral=True
    )
    merge: bool = field(
        False,
        "Only write ranking.csv/json/png from the finished runs (and "
        "link the runs --reuse_standalone finished since).",
        neutral=True,
    )
    train: bool = field(
        True,
        "Train the unfinished from-scratch runs of this shard; false: only "
        "score the paths and link --reuse_standalone's finished runs (e.g. while "
        "that ranking still trains; finish with --merge).",
        neutral=True,
    )
    data_dir: Optional[str] = field(
        None, "TFDS data directory (default: the supernet run's).", neutral=True
    )
    reuse_standalone: Optional[str] = field(
        None,
        "The --workdir of another ranking with the same retraining recipe: its finished "
        "from-scratch runs of the same architectures are linked instead of trained again (to "
        "compare supernets or scoring settings on the same architectures).",
        neutral=True,
    )
    overwrite: bool = field(False, "Delete a previous ranking in --workdir.", neutral=True)
    progress: bool = field(True, "Show progress.", neutral=True)

    @property
    def shard_index(self) -> tuple:
        return parse_shard(self.shard)

    def validate(self) -> "RankConfig":
        """Checks every field without touching files; returns ``self``.

        Raises:
          ValueError: naming the flag and quoting the bad value.
        """
        for name in ("supernet_dir", "workdir", "retrain_flagfile"):
            value = getattr(self, name)
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                raise ValueError(f"--{name} is required")
        if os.path.abspath(self.supernet_dir) == os.path.abspath(self.workdir):
            raise ValueError(f"--workdir must differ from --supernet_dir ({self.workdir!r})")
        check_fields(self)
        if self.select != "stratified" and not self.archs_file:
            raise ValueError(f"--select={self.select} reads --archs_file; pass it")
        if self.select == "stratified" and self.archs_file:
            raise ValueError(
                "--archs_file is read by --select=file or --select=history; drop it or set --select"
            )
        parse_shard(self.shard)
        return self

    def to_dict(self) -> dict:
        return run_dir.normalized(dataclasses.asdict(self))


# ------------------------------------------------------------------------------- settings
def retrain_config(config: RankConfig, supernet_run: dict):
    """The from-scratch recipe: the ``TrainConfig`` of ``config.retrain_flagfile`` on the
    supernet's space (name and overrides: the ranked architectures are that space's), its data
    directory, if unset, ``config.data_dir`` or the supernet run's, evaluated on the test split.
    ``workdir``, ``arch`` and ``seed`` are set per run by :func:`run`.

    Raises:
      ValueError: a missing or malformed flag file.
    """
    from spos_tf import train as train_app
    from spos_tf.config_flags import parse_flagfile

    fv = parse_flagfile(train_app.define_flags, config.retrain_flagfile)
    recipe = train_app.config_from_flags(fv)
    data_dir = (
        config.data_dir or recipe.data.data_dir or supernet_run.get("data", {}).get("data_dir")
    )
    return dataclasses.replace(
        recipe,
        data=dataclasses.replace(recipe.data, data_dir=data_dir),
        eval_split="test",
        progress=False,
        overwrite=False,
        uniform_bits=None,
        arch=None,
        workdir="",
        space=supernet_run["space"],
        space_overrides=dict(supernet_run.get("space_overrides", {})),
    )


def scoring_config(config: RankConfig):
    """The ``SearchConfig`` whose scoring settings score the paths (the search flag file's, or
    the search's defaults)."""
    from spos_tf import search as search_app
    from spos_tf.config_flags import parse_flagfile
    from spos_tf.search_config import SearchConfig

    changes = dict(
        supernet_dir=config.supernet_dir,
        workdir=os.path.join(os.fspath(config.workdir), "scoring"),
        data_dir=config.data_dir,
        progress=False,
        overwrite=False,
    )
    if config.search_flagfile is None:
        return SearchConfig(**changes).validate()
    fv = parse_flagfile(search_app.define_flags, config.search_flagfile)
    return dataclasses.replace(search_app.config_from_flags(fv), **changes).validate()


def check_workdir(config: RankConfig, settings: dict) -> str:
    """``"new"``, ``"resume"`` or ``"overwrite"``; writes nothing.

    Raises:
      run_dir.RunDirError: the workdir is a file or holds a ranking of other settings.
    """
    from spos_tf.search_config import SearchConfig
    from spos_tf.train_lib import TrainConfig

    defaults = {
        "rank": RankConfig().to_dict(),
        "retrain": TrainConfig().to_dict(),
        "scoring": SearchConfig().to_dict(),
    }
    own = neutral_fields(RankConfig)
    neutral = own + tuple(
        f"{part}.{name}"
        for part in ("rank", "retrain", "scoring")
        for name in own + ("data.data_dir", "progress", "cache_mb")
    )
    return run_dir.check_workdir(
        config.workdir,
        settings,
        overwrite=config.overwrite,
        neutral=neutral,
        defaults=defaults,
        entries=RANK_ENTRIES,
        config_file=CONFIG_FILE,
        what="a ranking",
    )


# ------------------------------------------------------------------------------- the run
def run(config: RankConfig, stream=None) -> dict:
    """Runs (or resumes) the ranking of ``config``; see the module docstring.

    Returns:
      ``{"rows": [...], "stats": {...} or None, "complete": bool, "trained": runs trained by
      this call, "scored": paths scored by this call}``.

    Raises:
      ValueError: bad settings, flag files, architectures file; run_dir.RunDirError /
        CheckpointError: bad supernet run or workdir. Nothing is written before these checks.
    """
    config = config.validate()
    stream = stream or sys.stdout
    supernet_run = run_dir.load_run_config(config.supernet_dir)
    if supernet_run.get("arch"):
        raise run_dir.RunDirError(
            f"--supernet_dir={config.supernet_dir!r} holds a stand-alone network, not a supernet"
        )
    space = run_dir.space_from_config(supernet_run)
    recipe = retrain_config(config, supernet_run)
    scoring = scoring_config(config)
    settings = {"rank": config.to_dict(), "retrain": recipe.to_dict(), "scoring": scoring.to_dict()}
    status = check_workdir(config, settings)
    reusable = reusable_runs(config, recipe)
    archs_path = os.path.join(config.workdir, ARCHS_FILE)
    stored = _read_json(archs_path) if status == "resume" else None
    archs = [space.parse(r["arch"]) for r in stored] if stored else select(config, space)
    for arch in archs:  # fails before writing if an architecture does not train in the recipe
        space.validate(arch)

    if status == "overwrite":
        run_dir.clear(config.workdir, RANK_ENTRIES)
    os.makedirs(config.workdir, exist_ok=True)
    run_dir.atomic_write_text(
        os.path.join(config.workdir, CONFIG_FILE),
        json.dumps(settings, indent=2, sort_keys=True) + "\n",
    )
    table = costs_lib.table(space)
    if not stored:
        run_dir.atomic_write_text(
            archs_path,
            json.dumps(
                [{"index": i, "arch": str(a), **table.all(a)} for i, a in enumerate(archs)],
                indent=2,
            )
            + "\n",
        )

    scored = trained = 0
    mine = shard_members(len(archs), config.shard)
    if not config.merge:
        scored = _score(config, scoring, space, archs, mine, stream)
    if config.merge or not config.train:
        _link_finished(config, reusable or {}, archs, _unfinished(config, mine))
    else:
        trained = _train(config, recipe, archs, mine, stream, reusable)
    rows = collect(config.workdir, space, archs, config.retrain_seeds)
    return {
        **write_outputs(config.workdir, rows, space, config),
        "scored": scored,
        "trained": trained,
    }


def _score(config, scoring, space, archs, mine, stream) -> int:
    """Scores the unscored architectures of ``mine`` on the supernet; returns how many."""
    todo = [
        i
        for i in mine
        if _read_json(os.path.join(arch_dir(config.workdir, i), SUPERNET_FILE)) is None
    ]
    if not todo:
        return 0
    from spos_tf.search_tuner import make_evaluator

    if config.progress:
        print(
            f"Scoring {len(todo)} paths on the supernet (BN recalibrated on "
            f"{scoring.num_calib_batches * scoring.calib_batch_size} images, held-out split)",
            file=stream,
        )
    evaluator = make_evaluator(scoring)
    for i in todo:
        start = time.perf_counter()
        accuracy = float(evaluator(archs[i]))
        record = {
            "arch": str(archs[i]),
            "accuracy": accuracy,
            "split": "holdout",
            "calib_images": scoring.num_calib_batches * scoring.calib_batch_size,
            "holdout_images": scoring.holdout_images,
            "seconds": round(time.perf_counter() - start, 3),
        }
        run_dir.atomic_write_text(
            os.path.join(arch_dir(config.workdir, i), SUPERNET_FILE),
            json.dumps(record, indent=2, sort_keys=True) + "\n",
        )
    del evaluator
    _clear_session()
    return len(todo)


def _clear_session():
    import tf_keras as keras

    keras.backend.clear_session()


def _unfinished(config, mine) -> list:
    """``(arch index, seed index)`` of the from-scratch runs of ``mine`` not finished yet."""
    return [
        (i, k)
        for i in mine
        for k in range(config.retrain_seeds)
        if _final_accuracy(os.path.join(arch_dir(config.workdir, i), f"seed_{k}")) is None
    ]


def _train(config, recipe, archs, mine, stream, reusable=None) -> int:
    """Trains the unfinished (architecture, seed) runs of ``mine``; returns how many."""
    from spos_tf import train_lib

    jobs = _unfinished(config, mine)
    if reusable:
        jobs = _link_finished(config, reusable, archs, jobs)
    if not jobs:
        return 0
    total = len(mine) * config.retrain_seeds
    bar = ProgressBar(total, initial=total - len(jobs), stream=stream, enabled=config.progress)
    start = time.monotonic()
    for done, (i, k) in enumerate(jobs, 1):
        workdir = os.path.join(arch_dir(config.workdir, i), f"seed_{k}")
        run_config = dataclasses.replace(
            recipe, workdir=workdir, arch=str(archs[i]), seed=recipe.seed + k
        )
        record = train_lib.run(run_config, stream=io.StringIO())
        _clear_session()
        bar.update(
            total - len(jobs) + done,
            arch=str(archs[i]),
            seed=recipe.seed + k,
            test=record.get("val_accuracy", float("nan")),
        )
    bar.close()
    if config.progress:
        print(
            f"Trained {len(jobs)} runs in {format_duration(time.monotonic() - start)}", file=stream
        )
    return len(jobs)


def reusable_runs(config: RankConfig, recipe) -> dict:
    """``{arch text: its run folder prefix in config.reuse_standalone}`` (``None`` without it);
    writes nothing.

    Raises:
      ValueError: the other folder is not a ranking, or used another retraining recipe.
    """
    if not config.reuse_standalone:
        return None
    other = os.path.abspath(config.reuse_standalone)
    settings = _read_json(os.path.join(other, CONFIG_FILE))
    stored = _read_json(os.path.join(other, ARCHS_FILE))
    if settings is None or stored is None:
        raise ValueError(
            f"--reuse_standalone={config.reuse_standalone!r} is not a spos_tf.rank "
            f"workdir (no {CONFIG_FILE} / {ARCHS_FILE})"
        )
    from spos_tf.train_lib import TrainConfig

    diff = run_dir.config_diff(
        settings["retrain"],
        recipe.to_dict(),
        ("workdir", "data.data_dir", "progress"),
        TrainConfig().to_dict(),
    )
    if diff:
        raise ValueError(
            f"--reuse_standalone={config.reuse_standalone!r} trained with another "
            f"recipe ({'; '.join(diff[:6])}); its runs cannot stand in for these"
        )
    return {record["arch"]: arch_dir(other, record["index"]) for record in stored}


def _link_finished(config, reusable: dict, archs, jobs) -> list:
    """Links the runs of ``jobs`` that the other ranking finished (``archs/<i>/seed_<k>``
    becomes a symlink to its run); returns the jobs left to train."""
    rest = []
    for i, k in jobs:
        source = (
            os.path.join(reusable[str(archs[i])], f"seed_{k}")
            if str(archs[i]) in reusable
            else None
        )
        if source is None or _final_accuracy(source) is None:
            rest.append((i, k))
            continue
        target = os.path.join(arch_dir(config.workdir, i), f"seed_{k}")
        run_dir.remove_path(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(source, target)
    return rest
