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
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from typing import Optional

import numpy as np

from spos_tf import costs as costs_lib
from spos_tf import rank_stats, run_dir
from spos_tf.config_flags import field
from spos_tf.progress import ProgressBar, format_duration
from spos_tf.space import SearchSpace

SELECTIONS = ("stratified", "file", "history")
CONFIG_FILE = "rank_config.json"
ARCHS_FILE = "archs.json"
CSV_FILE = "ranking.csv"
JSON_FILE = "ranking.json"
PLOT_FILE = "ranking.png"
HPARAMS_DIR = "hparams"
ARCHS_DIR = "archs"
SUPERNET_FILE = "supernet.json"
# Everything a ranking writes; overwrite deletes exactly these.
RANK_ENTRIES = (CONFIG_FILE, ARCHS_FILE, ARCHS_DIR, CSV_FILE, JSON_FILE, PLOT_FILE, HPARAMS_DIR)
# Settings that may differ between the processes and reruns of one ranking.
NEUTRAL = ("workdir", "shard", "merge", "progress", "overwrite", "data_dir", "reuse_standalone",
           "train")


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Settings of one ranking run (the flags of ``spos_tf.rank``)."""

    supernet_dir: Optional[str] = field(None, "The --workdir of a trained spos_tf.train supernet run.")
    workdir: Optional[str] = field(None, "Where the ranking writes (see spos_tf.rank_lib).")
    retrain_flagfile: Optional[str] = field(None, "Flag file of spos_tf.train giving the from-scratch "
                                  "recipe (e.g. flags/retrain.cfg); its --arch, --seed and "
                                  "--workdir are set per run, evaluation is on the test split.")
    search_flagfile: Optional[str] = field(None, "Flag file of spos_tf.search whose scoring "
                                           "settings (calibration images, held-out images, batch "
                                           "sizes) score the paths; default: the search's "
                                           "defaults (the paper's).")
    num_archs: int = field(20, "Architectures to rank.")
    select: str = field("stratified", "stratified: random architectures spread evenly over the "
                        "MACs range of the space; file: the architectures of --archs_file (one "
                        "per line, text form); history: the best and worst --num_archs/2 of a "
                        "search's history.csv (--archs_file).", choices=SELECTIONS)
    archs_file: Optional[str] = field(None, "--select=file: a text file of architectures; "
                                      "--select=history: a search's history.csv.")
    seed: int = field(0, "Seeds the selection; the from-scratch seeds are the recipe's --seed + "
                      "0..retrain_seeds-1.")
    retrain_seeds: int = field(1, "From-scratch trainings (seeds) per architecture.")
    pool_size: int = field(5000, "--select=stratified: random architectures the strata are "
                           "filled from.")
    shard: str = field("0/1", "i/n: this process does architectures j with j % n == i.")
    merge: bool = field(False, "Only write ranking.csv/json/png from the finished runs (and "
                        "link the runs --reuse_standalone finished since).")
    train: bool = field(True, "Train the unfinished from-scratch runs of this shard; false: only "
                        "score the paths and link --reuse_standalone's finished runs (e.g. while "
                        "that ranking still trains; finish with --merge).")
    data_dir: Optional[str] = field(None, "TFDS data directory (default: the supernet run's).")
    reuse_standalone: Optional[str] = field(
        None, "The --workdir of another ranking with the same retraining recipe: its finished "
        "from-scratch runs of the same architectures are linked instead of trained again (to "
        "compare supernets or scoring settings on the same architectures).")
    overwrite: bool = field(False, "Delete a previous ranking in --workdir.")
    progress: bool = field(True, "Show progress.")

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
        for name, low in (("num_archs", 2), ("seed", 0), ("retrain_seeds", 1), ("pool_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"--{name} must be an integer >= {low}, got {value!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"--select must be one of {SELECTIONS}, got {self.select!r}")
        if self.select != "stratified" and not self.archs_file:
            raise ValueError(f"--select={self.select} reads --archs_file; pass it")
        if self.select == "stratified" and self.archs_file:
            raise ValueError("--archs_file is read by --select=file or --select=history; drop it "
                             "or set --select")
        parse_shard(self.shard)
        return self

    def to_dict(self) -> dict:
        return run_dir.normalized(dataclasses.asdict(self))


def parse_shard(text: str) -> tuple:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``.

    Raises:
      ValueError: anything else.
    """
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return i, n


def shard_members(num_archs: int, shard: str) -> list:
    """Indices of the architectures that ``shard`` ("i/n") works on: ``j % n == i``."""
    i, n = parse_shard(shard)
    return [j for j in range(num_archs) if j % n == i]


# ------------------------------------------------------------------------------- selection
def select_stratified(space: SearchSpace, num: int, seed: int, pool_size: int = 5000) -> list:
    """``num`` distinct architectures spread evenly over the MACs range of the space.

    Draws ``pool_size`` random architectures (``numpy.random.default_rng([seed, 0])``), splits
    their MACs range into ``num`` equal-width strata and takes one random member of each (for an
    empty stratum the unused pool member closest to its centre), so the cheapest and the most
    expensive ends of the space are represented. Deterministic in ``(space, num, seed,
    pool_size)``.

    Raises:
      ValueError: the space has fewer than ``num`` distinct architectures in the pool.
    """
    rng = np.random.default_rng([seed, 0])
    table = costs_lib.table(space)
    pool = list(dict.fromkeys(space.sample(rng) for _ in range(max(pool_size, num))))
    if len(pool) < num:
        raise ValueError(f"space {space.name!r} gave only {len(pool)} distinct architectures in "
                         f"{pool_size} draws; lower --num_archs below that")
    macs = np.array([table.macs(a) for a in pool], float)
    low, high = macs.min(), macs.max()
    edges = np.linspace(low, high, num + 1)
    chosen: list = []
    used = set()
    for s in range(num):
        inside = [j for j in range(len(pool)) if j not in used and
                  (edges[s] <= macs[j] < edges[s + 1] or (s == num - 1 and macs[j] == high))]
        if inside:
            j = inside[int(rng.integers(len(inside)))]
        else:
            centre = (edges[s] + edges[s + 1]) / 2
            free = [j for j in range(len(pool)) if j not in used]
            j = min(free, key=lambda k: (abs(macs[k] - centre), k))
        used.add(j)
        chosen.append(pool[j])
    return sorted(chosen, key=lambda a: (table.macs(a), str(a)))


def read_archs_file(space: SearchSpace, path: str) -> list:
    """Architectures of a text file, one per line in text form (``#`` comments, blank lines and
    repeats ignored).

    Raises:
      ValueError: missing file or a line that is not an architecture of ``space`` (its number).
    """
    if not os.path.isfile(path):
        raise ValueError(f"--archs_file={path!r} does not exist")
    archs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#")[0].strip()
            if not line:
                continue
            try:
                archs.append(space.parse(line))
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
    return list(dict.fromkeys(archs))


def select_from_history(space: SearchSpace, path: str, num: int) -> list:
    """The ``ceil(num / 2)`` best and ``floor(num / 2)`` worst distinct architectures of a
    search's ``history.csv`` by held-out accuracy.

    Raises:
      ValueError: missing file, missing columns, or fewer than ``num`` distinct architectures.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--archs_file={path!r} does not exist (a search's history.csv)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"arch", "accuracy"} <= set(rows[0]):
        raise ValueError(f"{path} has no 'arch' and 'accuracy' columns: not a history.csv")
    best = {}
    for row in rows:
        arch = space.parse(row["arch"])
        best[arch] = max(best.get(arch, -math.inf), float(row["accuracy"]))
    if len(best) < num:
        raise ValueError(f"{path} holds {len(best)} distinct architectures, fewer than "
                         f"--num_archs={num}")
    ordered = sorted(best, key=lambda a: (-best[a], str(a)))
    top = -(-num // 2)
    return ordered[:top] + ordered[len(ordered) - (num - top):]


def select(config: RankConfig, space: SearchSpace) -> list:
    """The architectures ``config`` asks for (see :class:`RankConfig`)."""
    if config.select == "stratified":
        return select_stratified(space, config.num_archs, config.seed, config.pool_size)
    if config.select == "history":
        return select_from_history(space, config.archs_file, config.num_archs)
    archs = read_archs_file(space, config.archs_file)
    if len(archs) < 2:
        raise ValueError(f"--archs_file={config.archs_file!r} holds {len(archs)} architecture(s); "
                         f"ranking needs at least 2")
    return archs[:config.num_archs]


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
    data_dir = config.data_dir or recipe.data.data_dir or supernet_run.get("data", {}).get(
        "data_dir")
    return dataclasses.replace(
        recipe, data=dataclasses.replace(recipe.data, data_dir=data_dir), eval_split="test",
        progress=False, overwrite=False, uniform_bits=None, arch=None, workdir="",
        space=supernet_run["space"], space_overrides=dict(supernet_run.get("space_overrides", {})))


def scoring_config(config: RankConfig):
    """The ``SearchConfig`` whose scoring settings score the paths (the search flag file's, or
    the search's defaults)."""
    from spos_tf import search as search_app
    from spos_tf.config_flags import parse_flagfile
    from spos_tf.search_config import SearchConfig

    changes = dict(supernet_dir=config.supernet_dir,
                   workdir=os.path.join(os.fspath(config.workdir), "scoring"),
                   data_dir=config.data_dir, progress=False, overwrite=False)
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

    defaults = {"rank": RankConfig().to_dict(), "retrain": TrainConfig().to_dict(),
                "scoring": SearchConfig().to_dict()}
    neutral = NEUTRAL + tuple(f"{part}.{name}" for part in ("rank", "retrain", "scoring")
                              for name in NEUTRAL + ("data.data_dir", "progress", "cache_mb"))
    return run_dir.check_workdir(config.workdir, settings, overwrite=config.overwrite,
                                 neutral=neutral, defaults=defaults, entries=RANK_ENTRIES,
                                 config_file=CONFIG_FILE, what="a ranking")


# ------------------------------------------------------------------------------- the run
def arch_dir(workdir: str, index: int) -> str:
    return os.path.join(os.fspath(workdir), ARCHS_DIR, f"{index:03d}")


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _final_accuracy(workdir: str) -> Optional[float]:
    """The final test accuracy of a finished ``spos_tf.train`` run (None if unfinished)."""
    records = run_dir.MetricsLog(workdir).read()
    if records and records[-1].get("final") and records[-1].get("eval_split") == "test":
        return float(records[-1]["val_accuracy"])
    return None


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
        raise run_dir.RunDirError(f"--supernet_dir={config.supernet_dir!r} holds a stand-alone "
                                  f"network, not a supernet")
    space = run_dir.space_from_config(supernet_run)
    recipe = retrain_config(config, supernet_run)
    scoring = scoring_config(config)
    settings = {"rank": config.to_dict(), "retrain": recipe.to_dict(),
                "scoring": scoring.to_dict()}
    status = check_workdir(config, settings)
    reusable = reusable_runs(config, recipe)
    archs_path = os.path.join(config.workdir, ARCHS_FILE)
    stored = _read_json(archs_path) if status == "resume" else None
    archs = ([space.parse(r["arch"]) for r in stored] if stored else select(config, space))
    for arch in archs:  # fails before writing if an architecture does not train in the recipe
        space.validate(arch)

    if status == "overwrite":
        run_dir.clear(config.workdir, RANK_ENTRIES)
    os.makedirs(config.workdir, exist_ok=True)
    run_dir.atomic_write_text(os.path.join(config.workdir, CONFIG_FILE),
                              json.dumps(settings, indent=2, sort_keys=True) + "\n")
    table = costs_lib.table(space)
    if not stored:
        run_dir.atomic_write_text(archs_path, json.dumps(
            [{"index": i, "arch": str(a), **table.all(a)} for i, a in enumerate(archs)],
            indent=2) + "\n")

    scored = trained = 0
    mine = shard_members(len(archs), config.shard)
    if not config.merge:
        scored = _score(config, scoring, space, archs, mine, stream)
    if config.merge or not config.train:
        _link_finished(config, reusable or {}, archs, _unfinished(config, mine))
    else:
        trained = _train(config, recipe, archs, mine, stream, reusable)
    rows = collect(config.workdir, space, archs, config.retrain_seeds)
    return {**write_outputs(config.workdir, rows, space, config), "scored": scored,
            "trained": trained}


def _score(config, scoring, space, archs, mine, stream) -> int:
    """Scores the unscored architectures of ``mine`` on the supernet; returns how many."""
    todo = [i for i in mine
            if _read_json(os.path.join(arch_dir(config.workdir, i), SUPERNET_FILE)) is None]
    if not todo:
        return 0
    from spos_tf.search_tuner import make_evaluator

    if config.progress:
        print(f"Scoring {len(todo)} paths on the supernet (BN recalibrated on "
              f"{scoring.num_calib_batches * scoring.calib_batch_size} images, held-out split)",
              file=stream)
    evaluator = make_evaluator(scoring)
    for i in todo:
        start = time.perf_counter()
        accuracy = float(evaluator(archs[i]))
        record = {"arch": str(archs[i]), "accuracy": accuracy, "split": "holdout",
                  "calib_images": scoring.num_calib_batches * scoring.calib_batch_size,
                  "holdout_images": scoring.holdout_images,
                  "seconds": round(time.perf_counter() - start, 3)}
        run_dir.atomic_write_text(os.path.join(arch_dir(config.workdir, i), SUPERNET_FILE),
                                  json.dumps(record, indent=2, sort_keys=True) + "\n")
    del evaluator
    _clear_session()
    return len(todo)


def _clear_session():
    import tf_keras as keras

    keras.backend.clear_session()


def _unfinished(config, mine) -> list:
    """``(arch index, seed index)`` of the from-scratch runs of ``mine`` not finished yet."""
    return [(i, k) for i in mine for k in range(config.retrain_seeds)
            if _final_accuracy(os.path.join(arch_dir(config.workdir, i), f"seed_{k}")) is None]


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
        run_config = dataclasses.replace(recipe, workdir=workdir, arch=str(archs[i]),
                                         seed=recipe.seed + k)
        record = train_lib.run(run_config, stream=io.StringIO())
        _clear_session()
        bar.update(total - len(jobs) + done, arch=str(archs[i]), seed=recipe.seed + k,
                   test=record.get("val_accuracy", float("nan")))
    bar.close()
    if config.progress:
        print(f"Trained {len(jobs)} runs in {format_duration(time.monotonic() - start)}",
              file=stream)
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
        raise ValueError(f"--reuse_standalone={config.reuse_standalone!r} is not a spos_tf.rank "
                         f"workdir (no {CONFIG_FILE} / {ARCHS_FILE})")
    from spos_tf.train_lib import TrainConfig

    diff = run_dir.config_diff(settings["retrain"], recipe.to_dict(),
                               ("workdir", "data.data_dir", "progress"), TrainConfig().to_dict())
    if diff:
        raise ValueError(f"--reuse_standalone={config.reuse_standalone!r} trained with another "
                         f"recipe ({'; '.join(diff[:6])}); its runs cannot stand in for these")
    return {record["arch"]: arch_dir(other, record["index"]) for record in stored}


def _link_finished(config, reusable: dict, archs, jobs) -> list:
    """Links the runs of ``jobs`` that the other ranking finished (``archs/<i>/seed_<k>``
    becomes a symlink to its run); returns the jobs left to train."""
    rest = []
    for i, k in jobs:
        source = (os.path.join(reusable[str(archs[i])], f"seed_{k}")
                  if str(archs[i]) in reusable else None)
        if source is None or _final_accuracy(source) is None:
            rest.append((i, k))
            continue
        target = os.path.join(arch_dir(config.workdir, i), f"seed_{k}")
        run_dir.remove_path(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(source, target)
    return rest


def collect(workdir: str, space: SearchSpace, archs: list, seeds: int) -> list:
    """One row per architecture from the files of ``workdir`` (unfinished values are None)."""
    table = costs_lib.table(space)
    rows = []
    for i, arch in enumerate(archs):
        folder = arch_dir(workdir, i)
        score = _read_json(os.path.join(folder, SUPERNET_FILE))
        per_seed = [_final_accuracy(os.path.join(folder, f"seed_{k}")) for k in range(seeds)]
        done = [a for a in per_seed if a is not None]
        rows.append({"index": i, "arch": str(arch), **table.all(arch),
                     "supernet_accuracy": None if score is None else score["accuracy"],
                     "standalone": per_seed,
                     "standalone_mean": float(np.mean(done)) if done else None,
                     "standalone_std": float(np.std(done, ddof=1)) if len(done) > 1 else None,
                     "complete": score is not None and len(done) == seeds})
    return rows


def csv_text(rows: list, space: SearchSpace, seeds: int) -> str:
    """``ranking.csv``: arch, costs, supernet accuracy (held-out), stand-alone accuracy per seed
    (test), their mean and std (ddof 1)."""
    cost_names = list(costs_lib.table(space).all(space.parse(rows[0]["arch"]))) if rows else []
    columns = (["index", "arch"] + cost_names + ["supernet_accuracy"]
               + [f"standalone_seed_{k}" for k in range(seeds)]
               + ["standalone_mean", "standalone_std"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {k: row[k] for k in columns if k in row}
        out.update({f"standalone_seed_{k}": v for k, v in enumerate(row["standalone"])})
        writer.writerow({k: "" if v is None else v for k, v in out.items()})
    return buf.getvalue()


def write_outputs(workdir: str, rows: list, space: SearchSpace, config: RankConfig) -> dict:
    """Writes ``ranking.csv`` (every architecture), ``ranking.json`` (statistics over the complete
    rows), ``ranking.png`` and the TensorBoard HParams sessions (``hparams/``) once at least 3
    rows are complete; returns ``{"rows", "stats", "complete"}``."""
    run_dir.atomic_write_text(os.path.join(workdir, CSV_FILE),
                              csv_text(rows, space, config.retrain_seeds))
    full = [r for r in rows if r["complete"]]
    stats = None
    if len(full) >= 3:
        stats = rank_stats.summarize([r["supernet_accuracy"] for r in full],
                                     [r["standalone"] for r in full], seed=config.seed)
        # the baseline a supernet has to beat: ranking by MACs alone
        stats["macs_kendall_tau"] = rank_stats.correlation(
            "kendall_tau", [r["macs"] for r in full], [r["standalone_mean"] for r in full],
            seed=config.seed)
    complete = len(full) == len(rows)
    record = {"complete": complete, "finished_archs": len(full), "num_archs": len(rows),
              "retrain_seeds": config.retrain_seeds, "space": space.name,
              "supernet_dir": os.fspath(config.supernet_dir),
              "supernet_accuracy_split": "holdout", "standalone_accuracy_split": "test",
              "stats": stats}
    run_dir.atomic_write_text(os.path.join(workdir, JSON_FILE),
                              json.dumps(record, indent=2, sort_keys=True) + "\n")
    if stats is not None:
        write_plot(os.path.join(workdir, PLOT_FILE), full, stats, space.name)
        from spos_tf import hparams

        hparams.write_sessions(
            os.path.join(workdir, HPARAMS_DIR),
            [{"name": f"{r['index']:03d}", "hparams": {**space.to_values(space.parse(r["arch"])),
                                                      **_costs_of(r)},
              "metrics": {"supernet_accuracy": r["supernet_accuracy"],
                          "standalone_accuracy": r["standalone_mean"]}} for r in full])
    return {"rows": rows, "stats": stats, "complete": complete}


def _costs_of(row: dict) -> dict:
    return {k: float(row[k]) for k in ("macs", "params", "bitops", "latency_ms") if k in row}


def write_plot(path: str, rows: list, stats: dict, title: str = "") -> None:
    """Supernet accuracy (held-out) vs stand-alone accuracy (test, mean and seed range) of the
    complete rows, coloured by MACs, with tau and its interval in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([100 * r["supernet_accuracy"] for r in rows])
    y = np.array([100 * r["standalone_mean"] for r in rows])
    low = y - np.array([100 * min(r["standalone"]) for r in rows])
    high = np.array([100 * max(r["standalone"]) for r in rows]) - y
    macs = np.array([r["macs"] / 1e6 for r in rows])
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.errorbar(x, y, yerr=[low, high], fmt="none", ecolor="0.6", lw=1, zorder=1)
    points = ax.scatter(x, y, c=macs, cmap="viridis", s=36, zorder=2, edgecolors="k",
                        linewidths=0.4)
    fig.colorbar(points, ax=ax, label="MMACs")
    tau = stats["kendall_tau"]
    ax.set_title(f"{title}: Kendall tau {tau['value']:.2f} [{tau['ci_low']:.2f}, "
                 f"{tau['ci_high']:.2f}], Spearman {stats['spearman_rho']['value']:.2f}, "
                 f"n={stats['num_archs']}", fontsize=9)
    ax.set_xlabel("supernet accuracy (%), inherited weights, held-out split")
    ax.set_ylabel("stand-alone accuracy (%), test split\n(mean; bars: seed min..max)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run_dir.save_figure(fig, path)


def describe(result: dict) -> str:
    """A few lines for the console: the statistics, or how much is finished."""
    rows, stats = result["rows"], result["stats"]
    done = sum(r["complete"] for r in rows)
    head = f"{done}/{len(rows)} architectures finished"
    if stats is None:
        return head + " (statistics need 3)"
    tau, rho, r = stats["kendall_tau"], stats["spearman_rho"], stats["pearson_r"]
    return (f"{head}{'' if result['complete'] else ' (partial: statistics over those)'}\n"
            f"Kendall tau {tau['value']:.3f} (95% CI {tau['ci_low']:.3f}..{tau['ci_high']:.3f}, "
            f"p={tau['p_value']:.2g}), Spearman rho {rho['value']:.3f}, Pearson r "
            f"{r['value']:.3f}; ranking by MACs alone: Kendall tau "
            f"{stats['macs_kendall_tau']['value']:.3f}\nstand-alone test accuracy: spread {100 * stats['spread']:.2f} "
            f"points, seed std {100 * stats['seed_std']:.2f} points; top-k overlap "
            f"{stats['top_k_overlap']}")
