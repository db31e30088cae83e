"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021): the
one-shot supernet split on one gene into K sub-supernets, one per choice of that gene, each owning
the architectures that make that choice.

``python -m spos_tf.train --flagfile=<supernet cfg> --few_shot_split=<block> --few_shot_from=<one-
shot run> --steps=<S> --workdir=<dir>`` (:func:`train`) splits on the first searched gene kind
(:func:`spos_tf.models.sampling.split_kind`: the op wherever ops are searched) of choice block (cell
edge) ``block``. Sub-supernet ``c`` starts from the model weights and BN moving statistics of the
one-shot run's latest checkpoint; its optimizer state is fresh (momentum slots 0, step 0), so its
learning-rate schedule runs over its own ``S`` steps with the one-shot recipe. It samples uniformly
among the architectures whose gene is ``c`` (:class:`spos_tf.models.sampling.GeneSampler`, a function of
``(seed, step)``: every sub-supernet draws the same other genes at the same step).

Layout of the few-shot ``--workdir`` (the contract the search and rank apps read)::

    <workdir>/few_shot.json   {"gene": block, "kind": "op", "choices": [c, ...], "from": one-shot
                              workdir (absolute), "from_checkpoint": its checkpoint every
                              sub-supernet starts from, "from_step": that checkpoint's step,
                              "steps": S}
    <workdir>/sub_<c>/        sub-supernet c: an ordinary ``spos_tf.train`` supernet run directory
                              (:mod:`spos_tf.runs.run_dir`; its config.json holds few_shot_split,
                              few_shot_choice = c and few_shot_from), so run_dir.restore_model
                              reads each one; its flags.txt holds the few-shot command's flags
                              (``--flagfile`` of it reruns, i.e. resumes, the whole split)

The checkpoint is the one-shot run's latest at the first call, recorded in ``few_shot.json``:
a rerun uses the same one even if the one-shot run trained on since. Rerunning the same command
resumes: finished sub-supernets are skipped (``train_loop`` reports them trained), an unfinished
one resumes from its own latest checkpoint, one not started starts from ``from_checkpoint``.
Other settings are refused before anything is written, as for one run (``--overwrite`` deletes
``few_shot.json`` and every ``sub_*`` folder and starts over).

Scoring (``spos_tf.search`` / ``spos_tf.rank --supernet_dir=<few-shot workdir>``): every
architecture is scored by the sub-supernet that owns it (:meth:`Layout.owner`), with that sub-supernet's
BN recalibrated for the candidate exactly as on a one-shot supernet
(:class:`FewShotEvaluator` routes to one :class:`~spos_tf.models.evaluate.PathEvaluator` per
sub-supernet; :func:`spos_tf.search.tuner.make_evaluator` builds it).

Only ``--sampling=uniform`` inside each part and one process (``--strategy`` default or
mirrored) are supported.

Costs: training K x S steps (each as costly as a one-shot step; K = 5 on a NAS-Bench-201 edge);
scoring holds K supernets in memory (K x the one-shot supernet's weights) and traces the
calibration and evaluation loops once per sub-supernet; a candidate costs what it costs on the
one-shot supernet.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys

from spos_tf.runs import run_dir
from spos_tf.models.sampling import gene_of, split_choices, split_kind

FEW_SHOT_FILE = "few_shot.json"
SUB_PREFIX = "sub_"
# Settings of few_shot.json that may differ on resume (they are read back from the file).
RECORDED = ("from_checkpoint", "from_step")


def sub_dir(workdir: str, choice: int) -> str:
    """The run directory of sub-supernet ``choice`` in the few-shot ``workdir``."""
    return os.path.join(os.fspath(workdir), f"{SUB_PREFIX}{int(choice)}")


def is_few_shot(workdir) -> bool:
    """Whether ``workdir`` holds a few-shot split (a ``few_shot.json``)."""
    return workdir is not None and os.path.isfile(os.path.join(os.fspath(workdir), FEW_SHOT_FILE))


@dataclasses.dataclass(frozen=True)
class Layout:
    """The ``few_shot.json`` of a few-shot workdir (see the module docstring)."""

    workdir: str
    gene: int
    kind: str
    choices: tuple
    source: str
    from_checkpoint: str
    from_step: int
    steps: int

    def owner(self, space, arch) -> int:
        """The choice (sub-supernet) owning ``arch``: its ``kind`` gene in block ``gene``."""
        return gene_of(space, arch, self.gene)

    def sub_dir(self, choice: int) -> str:
        return sub_dir(self.workdir, choice)


def load_layout(workdir: str) -> Layout:
    """The :class:`Layout` of the few-shot ``workdir``.

    Raises:
      run_dir.RunDirError: no ``few_shot.json``, or an unreadable one.
    """
    path = os.path.join(os.fspath(workdir), FEW_SHOT_FILE)
    try:
        with open(path) as f:
            d = json.load(f)
        return Layout(
            os.fspath(workdir),
            int(d["gene"]),
            str(d["kind"]),
            tuple(int(c) for c in d["choices"]),
            str(d["from"]),
            str(d["from_checkpoint"]),
            int(d["from_step"]),
            int(d["steps"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise run_dir.RunDirError(
            f"{path} is missing or unreadable ({type(e).__name__}: {e}); rerun the few-shot "
            f"training command (python -m spos_tf.train --few_shot_split=...) into "
            f"{workdir!r}, or pass --overwrite to start over"
        ) from None


def load_run_config(workdir: str) -> dict:
    """The ``config.json`` of the few-shot ``workdir``'s first sub-supernet (space, data and
    recipe are every sub-supernet's), after checking that every sub-supernet run started.

    Raises:
      run_dir.RunDirError: a bad ``few_shot.json``, or a sub-supernet without a run directory.
    """
    layout = load_layout(workdir)
    configs = []
    for c in layout.choices:
        try:
            configs.append(run_dir.load_run_config(layout.sub_dir(c)))
        except run_dir.RunDirError as e:
            raise run_dir.RunDirError(
                f"sub-supernet {c} of the few-shot split in {workdir!r} has not started ({e}). "
                f"Rerun the few-shot training command (the flags are in any "
                f"{SUB_PREFIX}*/flags.txt) to train it"
            ) from None
    return configs[0]


def restore_models(workdir: str, strategy=None) -> tuple:
    """Restores every sub-supernet of the few-shot ``workdir`` from its latest checkpoint.

    Returns:
      ``(layout, space, {choice: supernet}, run_config)``: ``run_config`` is the first
      sub-supernet's (:func:`load_run_config`). Memory: K supernets.

    Raises:
      run_dir.RunDirError / CheckpointError: a missing or damaged sub-supernet run.
    """
    layout = load_layout(workdir)
    run_config = load_run_config(workdir)
    models, space = {}, None
    for c in layout.choices:
        space, models[c], _ = run_dir.restore_model(layout.sub_dir(c), strategy)
    return layout, space, models, run_config


class FewShotEvaluator:
    """Scores an architecture on the sub-supernet that owns it.

    ``evaluator(arch, index=None)`` calls ``evaluators[layout.owner(space, arch)](arch,
    index=index)``: each sub-supernet's own :class:`~spos_tf.models.evaluate.PathEvaluator` (set path,
    BN recalibrated for the candidate, held-out top-1), so a candidate is scored exactly as its
    owning sub-supernet run directory would score it as a one-shot supernet.

    Args:
      layout: the few-shot :class:`Layout`. space: the space of every sub-supernet.
      evaluators: ``{choice: evaluator}``, one per choice of ``layout``.

    Raises:
      ValueError: ``evaluators`` do not cover ``layout.choices``.
    """

    def __init__(self, layout: Layout, space, evaluators: dict):
        if sorted(evaluators) != sorted(layout.choices):
            raise ValueError(
                f"one evaluator per sub-supernet {list(layout.choices)} needed, got "
                f"{sorted(evaluators)}"
            )
        self.layout, self.space, self.evaluators = layout, space, dict(evaluators)
        self._last = None

    def __call__(self, arch, index: int | None = None) -> float:
        self._last = self.evaluators[self.layout.owner(self.space, arch)]
        return self._last(arch, index=index)

    @property
    def last_log_likelihood(self):
        """The held-out mean log-likelihood of the last scored architecture (None before any)."""
        return getattr(self._last, "last_log_likelihood", None)


# ------------------------------------------------------------------------------- training
def check_source(config, space, source=None, flag: str = "--few_shot_from") -> dict:
    """The run config of ``source`` (default ``config.few_shot_from``; ``flag`` names it in
    messages) after checking that it is a one-shot supernet run of ``space`` (same space, width,
    repeats, image size, classes...). Reads one file.

    Raises:
      run_dir.RunDirError: not a run directory; ValueError: a stand-alone network, a sub-supernet
        or another space (the message names the fix).
    """
    source = os.fspath(config.few_shot_from if source is None else source)
    if is_few_shot(source):
        raise ValueError(
            f"{flag}={source!r} holds a few-shot split; pass the one-shot supernet run "
            f"it started from ({load_layout(source).source})"
        )
    try:
        theirs = run_dir.load_run_config(source)
    except run_dir.RunDirError as e:
        raise run_dir.RunDirError(f"{flag}: {e}") from None
    if theirs.get("arch"):
        raise ValueError(
            f"{flag}={source!r} holds a stand-alone network (arch {theirs['arch']!r}); "
            f"pass the --workdir of a one-shot supernet run"
        )
    if theirs.get("few_shot_choice") is not None:
        raise ValueError(
            f"{flag}={source!r} is a sub-supernet of a few-shot split; pass the "
            f"one-shot supernet run it started from ({theirs.get('few_shot_from')})"
        )
    if run_dir.space_from_config(theirs) != space:
        mine = {"space": config.space, **config.space_overrides}
        other = {"space": theirs["space"], **theirs.get("space_overrides", {})}
        diff = "; ".join(
            f"{k}: {other.get(k, '<unset>')!r} there, {mine.get(k, '<unset>')!r} here"
            for k in sorted(set(mine) | set(other))
            if run_dir.normalized({"v": mine.get(k)}) != run_dir.normalized({"v": other.get(k)})
        )
        raise ValueError(
            f"{flag}={source!r} holds a supernet of another space ({diff or 'its space'}"
            f"): this run inherits its weights, so it needs the same space, width and "
            f"repeats. Pass that run's space flags (see {os.path.join(source, run_dir.FLAGS_FILE)}"
            f"), e.g. the --flagfile it was trained with, or another {flag}"
        )
    return theirs


def source_checkpoint(source, flag: str = "--few_shot_from") -> tuple:
    """``(prefix, step)`` of the latest checkpoint of the one-shot run ``source``.

    Raises:
      run_dir.RunDirError: it has none yet (the message names the command that trains it).
    """
    checkpoint = run_dir.latest_checkpoint(run_dir.checkpoint_dir(os.fspath(source)))
    if checkpoint is None:
        raise run_dir.RunDirError(
            f"{flag}={os.fspath(source)!r} has no checkpoint yet: train that one-shot supernet "
            f"first (python -m spos_tf.train --flagfile="
            f"{os.path.join(os.fspath(source), run_dir.FLAGS_FILE)})"
        )
    return checkpoint, run_dir.checkpoint_step(checkpoint)


def _check_workdir(workdir: str, settings: dict, overwrite: bool) -> tuple:
    """``(status, entries)`` of the few-shot ``workdir`` (see :func:`run_dir.check_workdir`)."""
    if os.path.exists(os.path.join(workdir, run_dir.CONFIG_FILE)):
        raise run_dir.RunDirError(
            f"--workdir={workdir!r} holds a one-shot training run (config.json); a few-shot "
            f"split needs a folder of its own: pass another --workdir"
        )
    subs = sorted(
        os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(workdir), SUB_PREFIX + "*"))
    )
    entries = (FEW_SHOT_FILE, *subs)
    status = run_dir.check_workdir(
        workdir,
        settings,
        overwrite=overwrite,
        neutral=RECORDED,
        entries=entries,
        config_file=FEW_SHOT_FILE,
        what="a few-shot split",
    )
    return status, entries


def _settings(config, space) -> dict:
    """What ``few_shot.json`` records of the split (but the checkpoint it starts from)."""
    return {
        "gene": config.few_shot_split,
        "kind": split_kind(space),
        "choices": list(split_choices(space, config.few_shot_split)),
        "from": config.few_shot_from,
        "steps": config.steps,
    }


def _prepare(config) -> tuple:
    """Every check of :func:`train` that can fail before it writes: ``(resolved config, space,
    source run config, {choice: sub-supernet config}, checkpoint, its step, the workdir's
    entries, status)``. Reads files, writes nothing."""
    from spos_tf.train.config import NEUTRAL_FIELDS, TrainConfig, resolve

    if config.strategy == "multi_worker":
        raise ValueError(
            "--few_shot_split trains its sub-supernets one after the other in one process; "
            "use --strategy=default or mirrored"
        )
    resolved = resolve(config)  # validates
    config, space = resolved.config, resolved.space
    workdir = os.fspath(config.workdir)
    source = check_source(config, space)
    status, entries = _check_workdir(workdir, _settings(config, space), config.overwrite)
    subs = {
        c: dataclasses.replace(
            config, workdir=sub_dir(workdir, c), few_shot_choice=c, overwrite=False
        )
        for c in split_choices(space, config.few_shot_split)
    }
    if status == "resume":  # every sub-supernet's settings, before anything is written
        for sub in subs.values():
            run_dir.check_workdir(
                sub.workdir,
                sub.to_dict(),
                overwrite=False,
                neutral=NEUTRAL_FIELDS,
                defaults=TrainConfig().to_dict(),
            )
        recorded = load_layout(workdir)
        checkpoint, step = recorded.from_checkpoint, recorded.from_step
    else:
        checkpoint, step = source_checkpoint(config.few_shot_from)
    waiting = [  # sub-supernets that will start from the one-shot checkpoint
        c
        for c, sub in subs.items()
        if status != "resume" or not run_dir.latest_checkpoint(run_dir.checkpoint_dir(sub.workdir))
    ]
    if waiting and not os.path.exists(checkpoint + ".index"):
        raise run_dir.CheckpointError(
            f"the one-shot checkpoint {checkpoint} recorded in "
            f"{os.path.join(workdir, FEW_SHOT_FILE)} is gone (rotated by the one-shot run's "
            f"--keep_checkpoints?), and sub-supernets {waiting} still have to start from it. "
            f"Pass --overwrite to split from the one-shot run's latest checkpoint"
        )
    return config, space, source, subs, checkpoint, step, entries, status


def train(config, *, flags_text: str | None = None, stream=None) -> dict:
    """Trains (or resumes) the few-shot split of ``config`` (``few_shot_split`` set,
    ``few_shot_choice`` None) into ``config.workdir``; see the module docstring.

    Cost: K x ``config.steps`` training steps (K = the split gene's choices), then each
    sub-supernet's final evaluation; one model built per sub-supernet, one after the other.

    Returns:
      ``{"step", "final": True, "val_accuracy": mean of the sub-supernets' final val_accuracy,
      "sub_val_accuracy": {choice: val_accuracy}}``.

    Raises (before anything is written):
      spos_tf.train.config.ConfigError: bad settings, a ``few_shot_from`` of another space or
        not a one-shot supernet; run_dir.RunDirError: a workdir of other settings (the few-shot
        split's or any sub-supernet's), a one-shot run without checkpoint; CheckpointError: the
        recorded one-shot checkpoint is gone while a sub-supernet still needs it.
    Then as :func:`spos_tf.train.loop.run` for each sub-supernet.
    """
    from spos_tf.train import loop as train_loop
    from spos_tf.train.config import ConfigError

    stream = stream or sys.stdout
    try:
        config, space, source, subs, checkpoint, step, entries, status = _prepare(config)
    except run_dir.RunDirError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if status == "overwrite":
        run_dir.clear(config.workdir, entries)
    os.makedirs(config.workdir, exist_ok=True)
    run_dir.atomic_write_json(
        os.path.join(config.workdir, FEW_SHOT_FILE),
        {**_settings(config, space), "from_checkpoint": checkpoint, "from_step": step},
    )
    if step < int(source.get("steps", step)):
        print(
            f"Note: the one-shot run {config.few_shot_from} is at step {step} of "
            f"{source['steps']}; the sub-supernets start from that checkpoint.",
            file=stream,
        )
    print(
        f"Few-shot split of block {config.few_shot_split} ({split_kind(space)}) of space "
        f"{space.name} into {len(subs)} sub-supernets, each from {checkpoint} (step {step}) "
        f"for {config.steps} more steps; workdir {config.workdir}",
        file=stream,
    )
    from spos_tf.runs.strategy import make_strategy

    strategy = make_strategy(config.strategy)  # one for all sub-supernets
    records = {}
    for i, (c, sub) in enumerate(subs.items()):
        print(
            f"Sub-supernet {i + 1}/{len(subs)}: {split_kind(space)} {c} in block "
            f"{config.few_shot_split} ({sub.workdir})",
            file=stream,
        )
        records[c] = train_loop.run(
            sub,
            flags_text=flags_text,
            stream=stream,
            init_checkpoint=checkpoint,
            strategy=strategy,
        )
    accuracy = {str(c): float(r["val_accuracy"]) for c, r in records.items()}
    return {
        "step": config.steps,
        "final": True,
        "val_accuracy": sum(accuracy.values()) / len(accuracy),
        "sub_val_accuracy": accuracy,
    }
