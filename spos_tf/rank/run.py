"""Does the supernet rank architectures? The library behind ``python -m spos_tf.rank``.

For N architectures of a trained supernet's space, it compares the accuracy of each path with
inherited weights (exactly as the search scores candidates:
:func:`spos_tf.search.tuner.make_evaluator`, BN recalibrated, held-out split) with the test accuracy
of the same architecture trained from scratch (a ``spos_tf.train`` run with a retraining recipe,
``retrain_seeds`` seeds each), and reports Kendall's tau, Spearman's rho and Pearson's r with
bootstrap intervals, top-k overlap, and the seed noise against the spread of the stand-alone
accuracies (:mod:`spos_tf.rank.stats`).

With ``ground_truth="<csv>[:column]"`` (``--ground_truth``; a NAS-Bench-201 supernet only) the
stand-alone accuracy is the benchmark's published one (:mod:`spos_tf.rank.ground_truth`) instead of a
training: nothing trains, only distinct cells are ranked (one per UniqueString), and
``ranking.json`` adds the ranking by MACs on the same cells, the supernet's paired difference to
it, and what the supernet's top picks are worth in the table
(:func:`spos_tf.rank.report.write_outputs`).

With a combined ``score`` (``--score``: ``"supernet+macs"``, ``"supernet+synflow"``,
``"supernet+naswot"``, ``"supernet+synflow+naswot"``; default ``"supernet"``, the supernet's
accuracy alone) the report adds a *combined* score: per architecture the mean of its rank by
supernet accuracy and its ranks by MACs, or by the SynFlow / NASWOT scores of its untrained
stand-alone network (:mod:`spos_tf.rank.zero_cost`; each computed once per architecture and
cached in ``archs/<i>/<proxy>.json``; NASWOT on the first 128 images of the supernet's training
split, :func:`spos_tf.search.priors.naswot_images`), all ``scipy.stats.rankdata`` ranks with
average ties, higher = better. It is reported as the combination it is (``ranking.csv``'s ``combined_score``,
``ranking.json``'s ``stats["combined"]``, a labelled line of :func:`describe`), next to the
supernet's own statistics, which stay as they are. ``score`` changes only the report: a ranking
may be rerun (or merged) with another ``score``, its supernet scores, trainings and cached
zero-cost scores are reused (``score`` is not among the settings :func:`check_workdir` compares).

Example::

    config = RankConfig(supernet_dir="/tmp/qs", workdir="/tmp/qs_rank",
                        retrain_flagfile="flags/tiny_retrain.cfg", num_archs=20, retrain_seeds=2)
    result = run(config)      # result["stats"]["kendall_tau"]["value"], ...
    config = RankConfig(supernet_dir="/tmp/nb201", workdir="/tmp/nb201_rank", num_archs=300,
                        ground_truth="nats_tss_test_accuracy.csv", select="random")
    config = dataclasses.replace(config, score="supernet+synflow")
    result = run(config)      # reuses the supernet scores; result["stats"]["combined"], ...

Layout of ``workdir``::

    rank_config.json              the settings (a rerun with other settings is refused)
    archs.json                    the selected architectures with their costs (fixed by the seed)
    shards.json                   the --shard count n of the first run (resumes with another n
                                  are refused: :func:`check_shards`)
    locks/<host>.<pid>.json       one per running process (:class:`WorkdirLock`; refuses
                                  --overwrite under a live process)
    archs/<i>/supernet.json       arch i's supernet accuracy and log-likelihood (held-out split)
    archs/<i>/seed_<k>/           arch i trained from scratch with seed k (a spos_tf.train run)
    archs/<i>/synflow.json        arch i's SynFlow score (a ``score`` with synflow only)
    archs/<i>/naswot.json         arch i's NASWOT score (a ``score`` with naswot only)
    ranking.csv, ranking.json, ranking.png, hparams/   (see :func:`write_outputs`)

Resuming and splitting: each unit of work (one supernet score, one from-scratch training, one
zero-cost score) is its own file or run directory; finished ones are skipped, an interrupted
training resumes from its last checkpoint, so a kill loses at most the steps since that
checkpoint. ``shard="i/n"`` does only the architectures ``j`` with ``j % n == i`` (run one process
per shard, on any hosts sharing the workdir); every call writes the outputs from what is finished
so far, and ``merge=True`` only writes them (with any ``shard``; with a zero-cost prior in
``score`` it first computes the scores still missing, e.g. of shards run without it).
``ranking.json`` says whether every architecture was finished (``"complete"``). The shard count is
recorded on first use and fixed for the workdir, and ``--overwrite`` is refused while another live
process holds the workdir: two processes never score, train or delete the same run directories at
once.

Costs: one supernet restore and ``N`` candidate scorings (as in the search), then
``N x retrain_seeds`` trainings of the retraining recipe. On ImageNet with ``flags/rank.cfg`` that
is the dominant cost: dozens of GPU-days; on the embedded digits minutes. With a ground-truth
table only the scorings (and about 1 s of bootstrap statistics per 100 cells), so hundreds of
cells are affordable. Each zero-cost prior adds one stand-alone network build and one forward
(SynFlow: and backward) pass per architecture, once (:func:`_zero_cost`: about 0.5-1 s
per NAS-Bench-201 cell at C=16, N=5, 1-3 s per ImageNet ShuffleNet at 224 on 2 CPU cores);
either combined score about doubles the statistics.

Why one module of this size: the ranking run (settings, scoring, training, resuming, sharding);
selection is :mod:`spos_tf.rank.select` and the results :mod:`spos_tf.rank.report`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import socket
import sys
import time
from typing import Optional

from spos_tf import costs as costs_lib
from spos_tf.runs import run_dir
from spos_tf.runs.choices import SUPERNET_STEP_HELP
from spos_tf.runs.config_flags import check_fields, field, neutral_fields
from spos_tf.runs.progress import ProgressBar, format_duration

# The selection and the results have their own modules; their names stay importable from here.
from spos_tf.rank.report import (
    ARCHS_DIR,
    CSV_FILE,
    HPARAMS_DIR,
    JSON_FILE,
    PLOT_FILE,  # noqa: F401
    PRIOR_LABELS,
    SCORES,
    SUPERNET_FILE,
    SYNFLOW_FILE,  # noqa: F401
    SYNFLOW_SEED,
    ZERO_COST,
    _final_accuracy,
    _read_json,
    arch_dir,
    collect,
    csv_text,  # noqa: F401
    describe,  # noqa: F401
    write_outputs,
    write_plot,  # noqa: F401
    zero_cost_priors,
    zero_cost_record,
)
from spos_tf.rank.select import (
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
SHARDS_FILE = "shards.json"
LOCKS_DIR = "locks"
# Everything a ranking writes; overwrite deletes exactly these (not LOCKS_DIR: live processes'
# lock files stay).
RANK_ENTRIES = (
    CONFIG_FILE,
    ARCHS_FILE,
    SHARDS_FILE,
    ARCHS_DIR,
    CSV_FILE,
    JSON_FILE,
    PLOT_FILE,
    HPARAMS_DIR,
)


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Settings of one ranking run (the flags of ``spos_tf.rank``)."""

    supernet_dir: Optional[str] = field(
        None, "The --workdir of a trained spos_tf.train supernet run."
    )
    supernet_step: Optional[int] = field(None, SUPERNET_STEP_HELP, low=1)
    workdir: Optional[str] = field(
        None, "Where the ranking writes (see spos_tf.rank.run).", neutral=True
    )
    retrain_flagfile: Optional[str] = field(
        None,
        "Flag file of spos_tf.train giving the from-scratch "
        "recipe (e.g. flags/retrain.cfg); its --arch, --seed and "
        "--workdir are set per run, evaluation is on the test split. Required unless "
        "--ground_truth.",
    )
    ground_truth: Optional[str] = field(
        None,
        "<csv>[:column]: take the stand-alone accuracy from a NAS-Bench-201 table (e.g. "
        "nats_tss_test_accuracy.csv:CIFAR10TestAccuracy200Epochs; default column "
        "CIFAR10TestAccuracy200Epochs) instead of training (replaces --retrain_flagfile; "
        "nasbench201 supernets only). Only distinct cells are ranked (one per UniqueString).",
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
        "MACs range of the space; random: uniform random architectures; file: the "
        "architectures of --archs_file (one per line, text form); history: the best and worst "
        "--num_archs/2 of a search's history.csv (--archs_file). With --ground_truth each "
        "draws distinct cells of the table (isomorphic cells count once).",
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
    score: str = field(
        "supernet",
        "What ranks the architectures. supernet: the supernet's accuracy alone; supernet+macs / "
        "supernet+synflow / supernet+naswot / supernet+synflow+naswot: the report adds a combined "
        "score, per architecture the mean of its ranks by supernet accuracy and by MACs / by the "
        "SynFlow or NASWOT scores of its untrained stand-alone network (each computed once per "
        "architecture, cached in archs/<i>/<proxy>.json; NASWOT on 128 training images), "
        "reported as a combination next to the supernet's own statistics. Changes only the "
        "report: rerun a ranking with another --score to reuse its supernet scores.",
        choices=SCORES,
        # Neutral: the stored work (supernet scores, trainings, zero-cost caches) does not depend
        # on it, so check_workdir resumes a ranking under another --score (only the report
        # changes) instead of asking for --overwrite.
        neutral=True,
    )
    pool_size: int = field(
        5000,
        "--select=stratified: random architectures the strata are filled from (with "
        "--ground_truth: distinct cells of the table, drawn without replacement).",
        low=1,
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
    overwrite: bool = field(
        False,
        "Delete a previous ranking in --workdir (refused while another live process works in it).",
        neutral=True,
    )
    progress: bool = field(True, "Show progress.", neutral=True)

    @property
    def shard_index(self) -> tuple:
        return parse_shard(self.shard)

    def validate(self) -> "RankConfig":
        """Checks every field without touching files; returns ``self``.

        Raises:
          ValueError: naming the flag and quoting the bad value.
        """
        for name in ("supernet_dir", "workdir"):
            value = getattr(self, name)
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                raise ValueError(f"--{name} is required")
        if os.path.abspath(self.supernet_dir) == os.path.abspath(self.workdir):
            raise ValueError(f"--workdir must differ from --supernet_dir ({self.workdir!r})")
        check_fields(self)
        if self.ground_truth and self.retrain_flagfile:
            raise ValueError(
                "--ground_truth takes the stand-alone accuracies from the table and "
                "--retrain_flagfile trains them: pass one of the two"
            )
        if not self.ground_truth and not self.retrain_flagfile:
            raise ValueError(
                "--retrain_flagfile is required (or --ground_truth=<csv>[:column] for a "
                "nasbench201 supernet)"
            )
        if self.ground_truth and self.reuse_standalone:
            raise ValueError(
                "--reuse_standalone links trainings; --ground_truth trains none: drop it"
            )
        if self.ground_truth and self.retrain_seeds != 1:
            raise ValueError(
                f"--retrain_seeds={self.retrain_seeds}: --ground_truth trains nothing; drop it"
            )
        if self.select in ("file", "history") and not self.archs_file:
            raise ValueError(f"--select={self.select} reads --archs_file; pass it")
        if self.select not in ("file", "history") and self.archs_file:
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
    from spos_tf.runs.flagfiles import config_from_flagfile

    recipe = config_from_flagfile("train", config.retrain_flagfile)
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
    from spos_tf.runs.flagfiles import config_from_flagfile
    from spos_tf.search.config import SearchConfig

    changes = dict(
        supernet_dir=config.supernet_dir,
        supernet_step=config.supernet_step,
        workdir=os.path.join(os.fspath(config.workdir), "scoring"),
        data_dir=config.data_dir,
        progress=False,
        overwrite=False,
    )
    if config.search_flagfile is None:
        return SearchConfig(**changes).validate()
    scoring = config_from_flagfile("search", config.search_flagfile)
    return dataclasses.replace(scoring, **changes).validate()


def check_workdir(config: RankConfig, settings: dict) -> str:
    """``"new"``, ``"resume"`` or ``"overwrite"``; writes nothing.

    Raises:
      run_dir.RunDirError: the workdir is a file or holds a ranking of other settings.
    """
    from spos_tf.search.config import SearchConfig
    from spos_tf.train import TrainConfig

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


# ------------------------------------------------------------------------------- shards, locks
def check_shards(workdir: str, shard: str) -> None:
    """Refuses a shard count other than the one recorded in ``workdir`` (:data:`SHARDS_FILE`,
    written by :func:`record_shards` on the workdir's first non-merge use); reads only.

    Shards of different counts split the architectures differently (``j % n``), so they would
    score and train the same run directories at once.

    Raises:
      run_dir.RunDirError: naming the stored count and the fix.
    """
    _, n = parse_shard(shard)
    path = os.path.join(os.fspath(workdir), SHARDS_FILE)
    stored = _read_json(path)
    if stored is None:
        if os.path.exists(path):
            raise run_dir.RunDirError(
                f"{path} is unreadable; if no other process works in {workdir!r}, delete it "
                f"(the next run records its --shard count again)"
            )
        return
    if int(stored.get("n", n)) != n:
        raise run_dir.RunDirError(
            f"workdir {workdir!r} is split into {stored['n']} shards (--shard=i/{stored['n']}, "
            f"recorded in {SHARDS_FILE}), this call has --shard={shard}: shards of another count "
            f"would score and train the same architectures at once. Rerun with "
            f"--shard=i/{stored['n']} (i = 0..{stored['n'] - 1}), or, once no process works in "
            f"the workdir, delete {path} to split it anew"
        )


def record_shards(workdir: str, shard: str) -> None:
    """Records ``shard``'s count in ``workdir`` if none is recorded yet, else
    :func:`check_shards`. The record appears complete and only once (a hard link of a written
    temporary file, which fails if one exists), so of two processes starting at once with
    different counts one is refused."""
    _, n = parse_shard(shard)
    path = os.path.join(os.fspath(workdir), SHARDS_FILE)
    if not os.path.exists(path):
        tmp = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps({"n": n}) + "\n")
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            pass
        finally:
            os.remove(tmp)
    check_shards(workdir, shard)


def _pid_alive(pid) -> bool:
    """Whether local process ``pid`` exists (an invalid pid counts as alive: never unsafe)."""
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists under another user (or not a pid we can test): assume alive
    return True


class WorkdirLock:
    """Who works in a ranking's workdir: one lock file per process, ``locks/<host>.<pid>.json``
    holding ``{"pid", "host", "shard", "merge", "overwriting", "started"}``.

    Several processes may hold a workdir at once (the shards of one ranking, a ``--merge``);
    what the locks refuse is deletion under a live process:

    - ``--overwrite`` while another live holder exists (it would delete that one's runs);
    - any start while a live holder is still deleting (``"overwriting"``: set from before its
      check until its deletion is done).

    Liveness: a holder on this host (``socket.gethostname()``) is alive while its pid exists
    (``os.kill(pid, 0)``); a dead local pid's lock is stale and taken over (deleted). A holder on
    another host cannot be tested and counts as alive: if that process is gone, the error names
    its lock file to delete. (A reused local pid reads as alive: refused, never unsafe.) Locks are
    released when :func:`run` returns or raises; a killed process leaves its file, stale for the
    next local start.
    """

    def __init__(self, workdir: str, config: "RankConfig"):
        self.workdir = os.fspath(workdir)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.host)
        self.path = os.path.join(self.workdir, LOCKS_DIR, f"{safe}.{self.pid}.json")
        self.record = {
            "pid": self.pid,
            "host": self.host,
            "shard": config.shard,
            "merge": bool(config.merge),
            "overwriting": False,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    def _write(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        run_dir.atomic_write_text(self.path, json.dumps(self.record, sort_keys=True) + "\n")

    def others(self) -> list:
        """``[(lock file, record or None if unreadable)]`` of the live other holders; deletes
        stale local ones."""
        folder = os.path.join(self.workdir, LOCKS_DIR)
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        live = []
        for name in names:
            path = os.path.join(folder, name)
            if path == self.path or not name.endswith(".json"):
                continue
            record = _read_json(path)
            if record is None and not os.path.exists(path):
                continue  # released meanwhile
            if (
                isinstance(record, dict)
                and record.get("host") == self.host
                and not _pid_alive(record.get("pid", -1))
            ):
                run_dir.remove_path(path)  # stale: its process is gone
                continue
            live.append((path, record if isinstance(record, dict) else None))
        return live

    def acquire(self, overwrite: bool) -> None:
        """Writes this process's lock file, then refuses (releasing it) as the class docstring
        says.

        Raises:
          run_dir.RunDirError: naming the live holders (pid, host, shard, lock file).
        """
        self.record["overwriting"] = bool(overwrite)
        self._write()
        others = self.others()
        deleting = [(p, r) for p, r in others if r is None or r.get("overwriting")]
        if overwrite and others:
            self.release()
            raise run_dir.RunDirError(
                f"--overwrite would delete the ranking in {self.workdir!r} while other processes "
                f"work in it ({_holders(others)}). Wait for them to finish or stop them, drop "
                f"--overwrite to join them, or, if they are gone, delete their lock files"
            )
        if deleting:
            self.release()
            raise run_dir.RunDirError(
                f"another process is deleting the ranking in {self.workdir!r} (--overwrite: "
                f"{_holders(deleting)}); rerun once it has started, or, if it is gone, delete "
                f"its lock file"
            )

    def done_overwriting(self) -> None:
        """The deletion is done: others may start (and join) now."""
        if self.record["overwriting"]:
            self.record["overwriting"] = False
            self._write()

    def release(self) -> None:
        run_dir.remove_path(self.path)
        try:
            os.rmdir(os.path.dirname(self.path))  # only when empty
        except OSError:
            pass


def _holders(others) -> str:
    return "; ".join(
        f"pid {r.get('pid')} on {r.get('host')} (--shard={r.get('shard')}"
        f"{', --merge' if r.get('merge') else ''}): {p}"
        if r
        else f"unreadable lock {p}"
        for p, r in others
    )


def check_space(space, config: RankConfig) -> None:
    """Refuses a supernet whose space is not NAS-Bench-201's cell (``--ground_truth``).

    Raises:
      ValueError: naming the space and the fix.
    """
    from spos_tf.spaces import nasbench201

    if (
        tuple(space.ops) != nasbench201.OPS
        or space.num_blocks != len(nasbench201.EDGES)
        or tuple(space.searched_genes) != ("op",)
    ):
        raise ValueError(
            f"--ground_truth ranks NAS-Bench-201 cells, but --supernet_dir="
            f"{config.supernet_dir!r} holds a supernet of space {space.name!r} (ops "
            f"{list(space.ops)}, {space.num_blocks} choice blocks); rank a supernet trained with "
            f"--space=nasbench201 (e.g. flags/nb201_supernet.cfg), or drop --ground_truth and "
            f"pass --retrain_flagfile"
        )


# ------------------------------------------------------------------------------- the run
def run(config: RankConfig, stream=None) -> dict:
    """Runs (or resumes) the ranking of ``config``; see the module docstring.

    Returns:
      ``{"rows": [...], "stats": {...} or None, "complete": bool, "trained": runs trained by
      this call, "scored": paths scored by this call, "synflow", "naswot": zero-cost scores
      computed by this call}`` (and ``"score"`` for a combined score).

    Raises:
      ValueError: bad settings, flag files, architectures file, ground-truth table (also
        ``FileNotFoundError``); run_dir.RunDirError / CheckpointError: bad supernet run or
        workdir, another shard count, or another live process in the workdir (see
        :class:`WorkdirLock`). Nothing is written before these checks (but this process's
        lock file, removed again).
    """
    config = config.validate()
    stream = stream or sys.stdout
    from spos_tf.search.tuner import load_supernet_config

    supernet_run = load_supernet_config(config.supernet_dir, config.supernet_step)  # few-shot too
    space = run_dir.space_from_config(supernet_run)
    truth = recipe = None
    if config.ground_truth:
        from spos_tf.rank import ground_truth

        check_space(space, config)
        truth = ground_truth.load(config.ground_truth)
    else:
        recipe = retrain_config(config, supernet_run)
    scoring = scoring_config(config)
    settings = {"rank": config.to_dict(), "scoring": scoring.to_dict()}
    if recipe is not None:
        settings["retrain"] = recipe.to_dict()
    status = check_workdir(config, settings)
    if status == "resume" and not config.merge:
        check_shards(config.workdir, config.shard)
    reusable = reusable_runs(config, recipe) if recipe is not None else None
    archs_path = os.path.join(config.workdir, ARCHS_FILE)
    stored = _read_json(archs_path) if status == "resume" else None
    if stored:
        archs = [space.parse(r["arch"]) for r in stored]
    else:
        archs = select(config, space, truth, stream if config.progress else None)
    for arch in archs:  # fails before writing if an architecture does not train in the recipe
        space.validate(arch)
        if truth is not None:
            truth.cell(arch.genes[0])  # or MissingCellError, naming it

    lock = WorkdirLock(config.workdir, config)
    lock.acquire(overwrite=status == "overwrite")
    try:
        if status != "new" and check_workdir(config, settings) == "new":
            raise run_dir.RunDirError(  # deleted between the checks and the lock
                f"the ranking in {config.workdir!r} was deleted while this process started "
                f"(another process's --overwrite?); rerun the same command"
            )
        if status == "overwrite":
            run_dir.clear(config.workdir, RANK_ENTRIES)
            lock.done_overwriting()
        os.makedirs(config.workdir, exist_ok=True)
        if not config.merge:
            record_shards(config.workdir, config.shard)
        return _run_locked(
            config, space, truth, recipe, scoring, settings, archs, stored, reusable, stream
        )
    finally:
        lock.release()


def _run_locked(config, space, truth, recipe, scoring, settings, archs, stored, reusable, stream):
    """The part of :func:`run` that writes, under its :class:`WorkdirLock`."""
    archs_path = os.path.join(config.workdir, ARCHS_FILE)
    run_dir.atomic_write_text(
        os.path.join(config.workdir, CONFIG_FILE),
        json.dumps(settings, indent=2, sort_keys=True) + "\n",
    )
    table = costs_lib.table(space)
    if not stored:
        records = [
            {
                "index": i,
                "arch": str(a),
                **({} if truth is None else {"benchmark": space.benchmark_string(a)}),
                **table.all(a),
            }
            for i, a in enumerate(archs)
        ]
        run_dir.atomic_write_text(archs_path, json.dumps(records, indent=2) + "\n")

    scored = trained = 0
    proxies = dict.fromkeys(ZERO_COST, 0)
    mine = shard_members(len(archs), config.shard)
    if not config.merge:
        scored = _score(config, scoring, space, archs, mine, stream)
    for name in zero_cost_priors(config.score):  # a merge computes what the shards did not
        proxies[name] = _zero_cost(
            config, space, archs, range(len(archs)) if config.merge else mine, stream, name
        )
    if truth is not None:  # the stand-alone accuracies are the table's: nothing to train
        pass
    elif config.merge or not config.train:
        _link_finished(config, reusable or {}, archs, _unfinished(config, mine))
    else:
        trained = _train(config, recipe, archs, mine, stream, reusable)
    rows = collect(config.workdir, space, archs, config.retrain_seeds, truth, config.score)
    return {
        **write_outputs(config.workdir, rows, space, config, truth),
        "scored": scored,
        "trained": trained,
        **proxies,
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
    from spos_tf.search.tuner import make_evaluator

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
            "log_likelihood": getattr(evaluator, "last_log_likelihood", None),
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


def _zero_cost(config, space, archs, members, stream, name: str = "synflow") -> int:
    """Computes the zero-cost proxy ``name`` (:func:`spos_tf.search.priors.zero_cost_of`: SynFlow,
    float64, or NASWOT on :func:`~spos_tf.search.priors.naswot_images`, of the untrained
    stand-alone network of the supernet's space, ``spos_tf.build_standalone(space, arch,
    seed=SYNFLOW_SEED)``) of each architecture of ``members`` that has no cached one
    (:func:`~spos_tf.rank.report.zero_cost_record`) and caches it in ``archs/<i>/<name>.json``
    (``{"arch", name, "seed", "seconds"}``); returns how many it computed.

    Cost: per architecture one network build and one forward (SynFlow: and backward) pass (see
    the module docstring), once: a rerun, resume or merge reads the cache. (A ``--merge`` while a
    shard still computes its own may compute one twice; both write the same record, atomically.)
    """
    todo = [i for i in members if zero_cost_record(config.workdir, i, archs[i], name) is None]
    if not todo:
        return 0
    from spos_tf.search.priors import naswot_images, zero_cost_of

    images = naswot_images(config.supernet_dir, config.data_dir) if name == "naswot" else None
    bar = ProgressBar(len(todo), stream=stream, enabled=config.progress)
    start = time.monotonic()
    for done, i in enumerate(todo, 1):
        began = time.perf_counter()
        value = zero_cost_of(name, space, archs[i], images)
        record = {
            "arch": str(archs[i]),
            name: value,
            "seed": SYNFLOW_SEED,
            "seconds": round(time.perf_counter() - began, 3),
        }
        run_dir.atomic_write_text(
            os.path.join(arch_dir(config.workdir, i), f"{name}.json"),
            json.dumps(record, indent=2, sort_keys=True) + "\n",
        )
        _clear_session()
        bar.update(done, arch=str(archs[i]), **{name: value})
    bar.close()
    if config.progress:
        print(
            f"{PRIOR_LABELS[name]} of {len(todo)} stand-alone networks in "
            f"{format_duration(time.monotonic() - start)}",
            file=stream,
        )
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
    from spos_tf import train as train_lib

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
    from spos_tf.train import TrainConfig

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
