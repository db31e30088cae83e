"""Warm start: a one-shot supernet run that starts from another supernet run's weights
(``python -m spos_tf.train --init_from=<run or checkpoint> ...``).

The new run reads the model weights and BN moving statistics of one checkpoint of the source run
(a one-shot supernet of the same space: :func:`spos_tf.train.few_shot.check_source`); its
optimizer state (momentum slots, step) and learning-rate schedule start fresh, and it trains
``--steps`` steps. This is the equal-budget control of a few-shot split: the same extra steps on
the whole space instead of one part per sub-supernet.

``--init_from`` names either the source's ``--workdir`` (its latest checkpoint at the first
start) or one checkpoint prefix ``<workdir>/checkpoints/ckpt-<step>``. The checkpoint used is
recorded in ``<workdir>/init_from.json`` at the first start, so a resume before the run's own
first checkpoint reads the same one even if the source trained on; once the run has a checkpoint
of its own it resumes from that and the source is not read again.

Cost: one file read and one partial checkpoint read at the first start.
"""

from __future__ import annotations

import os

from spos_tf.runs import run_dir

INIT_FILE = run_dir.INIT_FILE


def _split_source(path: str) -> tuple:
    """``(run workdir, checkpoint prefix or None)`` of an ``--init_from`` value."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path + ".index"):  # a checkpoint prefix <workdir>/checkpoints/ckpt-N
        return os.path.dirname(os.path.dirname(path)), path
    return path, None


def checkpoint(config, space, status: str) -> str:
    """The checkpoint prefix the run ``config`` (``init_from`` set) starts from.

    Reads ``<workdir>/init_from.json`` when the run resumes and has it; otherwise checks the
    source (same space, a one-shot supernet) and picks its checkpoint. Writes nothing.

    Raises:
      run_dir.RunDirError: the source is not a run directory, or has no checkpoint yet;
      run_dir.CheckpointError: the recorded checkpoint is gone; ValueError: the source is a
        stand-alone network, a few-shot split or sub-supernet, or of another space.
    """
    from spos_tf.train import few_shot

    recorded = os.path.join(os.fspath(config.workdir), INIT_FILE)
    if status == "resume" and os.path.isfile(recorded):
        path = run_dir.read_settings(recorded)["checkpoint"]
    else:
        workdir, path = _split_source(config.init_from)
        few_shot.check_source(config, space, source=workdir, flag="--init_from")
        if path is None:
            path, _ = few_shot.source_checkpoint(workdir, flag="--init_from")
    if not os.path.exists(path + ".index"):
        raise run_dir.CheckpointError(
            f"the checkpoint {path} this run starts from (--init_from, recorded in {recorded}) "
            f"is gone (rotated by that run's --keep_checkpoints?); pass --overwrite to start "
            f"from the source's latest checkpoint"
        )
    return path


def record(workdir: str, path: str) -> None:
    """Writes ``<workdir>/init_from.json`` (the checkpoint the run starts from, and its step)
    into the existing run folder ``workdir``."""
    run_dir.atomic_write_json(
        os.path.join(os.fspath(workdir), INIT_FILE),
        {"checkpoint": path, "step": run_dir.checkpoint_step(path)},
    )
