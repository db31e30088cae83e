"""Ranking quality along one supernet run: Kendall tau against a ground truth at every checkpoint.

Usage:
    python benchmarks/tau_vs_epochs.py --supernet_dir=<runs>/nb201 --ranking=<runs>/nb201_rank \
        --ground_truth=<nats_tss_test_accuracy.csv> --search_flagfile=flags/nb201_search.cfg \
        --out=<runs>/nb201_tau_vs_epochs [--calib_mode=batch_stats] [--max_archs=60 --every=2]

The architectures are those of a finished ``spos_tf.rank`` workdir (``--ranking``: its
``archs.json``), so every checkpoint is scored on the same cells. For every checkpoint of the
supernet run (``keep_checkpoints`` decides how many exist), the weights are loaded into one
restored supernet, each architecture is scored exactly as the search scores candidates (the
search flag file's calibration and held-out images; ``--calib_mode`` overrides its mode), and
Kendall tau / Spearman rho with bootstrap 95% intervals (``spos_tf.rank.stats``) against the ground
truth are written, with the MACs baseline on the same cells.

A few-shot ``--supernet_dir`` (:mod:`spos_tf.train.few_shot`) is scored at every step where all of
its sub-supernets hold a checkpoint: each sub-supernet loads its own checkpoint of that step, and
each cell is scored on the sub-supernet that owns it, as ``spos_tf.rank`` scores it. Its rows'
``step`` counts the sub-supernets' own steps; ``from_step`` (0 for a one-shot run) is the one-shot
step they split from, and the plot's x axis is their sum.

Outputs in ``--out``: ``step_<n>.json`` per checkpoint (resumable: finished checkpoints are
skipped; a rerun with other cells, scoring settings or ground truth is refused rather than mixed
with them), ``tau_vs_epochs.json`` (all rows) and ``tau_vs_epochs.png``.
Cost: one scoring per architecture and checkpoint (about a second each on 2 CPU cores for the
NAS-Bench-201 proxy of flags/nb201_search.cfg).
"""

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def every_nth(paths: list, every: int) -> list:
    """Every ``every``-th of ``paths`` (checkpoints or their steps, oldest first), counted back
    from the last, which is always kept; in their original order."""
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    return list(paths)[::-1][::every][::-1]


def checkpoint_steps(saved: dict) -> list:
    """The steps, oldest first, at which every run of ``saved`` holds a checkpoint.

    Args:
      saved: ``{key: steps}``: one run (key None), or the sub-supernets of a few-shot split keyed
        by their choice.

    Raises:
      ValueError: no step common to all runs; the message names the runs without a checkpoint.
    """
    common = set.intersection(*(set(s) for s in saved.values()))
    if common:
        return sorted(common)
    empty = [str(k) for k, s in saved.items() if not s]
    if list(saved) == [None]:
        detail = "the run has no checkpoint"
    elif empty:
        detail = f"sub-supernet(s) {', '.join(empty)} have no checkpoint"
    else:
        listed = "; ".join(f"{k}: {sorted(s)}" for k, s in saved.items())
        detail = f"the sub-supernets hold checkpoints at no common step ({listed})"
    raise ValueError(f"nothing to score: {detail}. Train the run (or finish the split) first")


def stale_settings(stored: dict, settings: dict) -> list:
    """Names of the ``settings`` that a stored checkpoint row holds with other values (rows
    written before a setting was recorded are compared on the settings they have)."""
    return [k for k, v in settings.items() if k in stored and stored[k] != v]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet_dir", required=True)
    parser.add_argument("--ranking", required=True, help="a spos_tf.rank workdir (archs.json)")
    parser.add_argument("--ground_truth", required=True, help="<csv>[:column]")
    parser.add_argument("--search_flagfile", default=None)
    parser.add_argument("--calib_mode", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max_archs", type=int, default=None)
    parser.add_argument(
        "--every", type=int, default=1, help="score every n-th checkpoint, counted from the last"
    )
    args = parser.parse_args()
    if args.every < 1:
        parser.error(f"--every must be >= 1 (1 scores every checkpoint), got {args.every}")

    import tensorflow as tf

    from spos_tf import costs
    from spos_tf.rank import ground_truth
    from spos_tf.rank import stats as rank_stats
    from spos_tf.runs import run_dir
    from spos_tf.runs.flagfiles import config_from_flagfile
    from spos_tf.search.config import SearchConfig
    from spos_tf.search.tuner import make_evaluator
    from spos_tf.train import few_shot

    changes = dict(supernet_dir=args.supernet_dir, workdir=args.out, progress=False)
    if args.calib_mode:
        changes["calib_mode"] = args.calib_mode
    if args.search_flagfile:
        config = config_from_flagfile("search", args.search_flagfile)
        config = dataclasses.replace(config, **changes).validate()
    else:
        config = SearchConfig(**changes).validate()
    table = ground_truth.load(args.ground_truth)
    with open(os.path.join(args.ranking, "archs.json")) as f:
        records = json.load(f)[: args.max_archs]

    evaluator = make_evaluator(config)
    if isinstance(evaluator, few_shot.FewShotEvaluator):  # one model per sub-supernet
        layout = evaluator.layout
        models = {c: e.model for c, e in evaluator.evaluators.items()}
        folders = {c: run_dir.checkpoint_dir(layout.sub_dir(c)) for c in layout.choices}
        from_step, space = layout.from_step, evaluator.space
    else:
        models = {None: evaluator.model}
        folders = {None: run_dir.checkpoint_dir(args.supernet_dir)}
        from_step, space = 0, evaluator.model.space
    archs = [space.parse(r["arch"]) for r in records]
    truth = np.array([table.accuracy(a.genes[0]) for a in archs])
    macs = np.array([costs.macs(space, a) for a in archs], float)
    saved = {c: run_dir.saved_checkpoints(f) for c, f in folders.items()}
    try:
        steps = checkpoint_steps(saved)
    except ValueError as e:
        sys.exit(str(e))
    steps = every_nth(steps, args.every)
    scoring = {
        k: v
        for k, v in config.to_dict().items()
        if (k.startswith(("calib_", "holdout_")) and k != "calib_mode") or k == "precision"
    }
    settings = {
        "archs": len(archs),
        "calib_mode": config.calib_mode,
        "cells": [r["arch"] for r in records],
        "scoring": scoring,
        "truth": truth.tolist(),
    }
    stored = {}
    for step in steps:  # all finished rows are checked before anything is scored
        out_file = os.path.join(args.out, f"step_{step}.json")
        if os.path.exists(out_file):
            with open(out_file) as f:
                stored[step] = json.load(f)
            stale = stale_settings(stored[step], settings)
            if stale:
                sys.exit(
                    f"{out_file} was scored with other {', '.join(stale)} than this run's; "
                    f"pass another --out, or delete the step_*.json files in {args.out} to "
                    f"score again"
                )
    os.makedirs(args.out, exist_ok=True)  # only once every check has passed
    rows = []
    for step in steps:
        out_file = os.path.join(args.out, f"step_{step}.json")
        if step in stored:
            rows.append(stored[step])
            continue
        for c, model in models.items():  # every sub-supernet at the same step of its own run
            run_dir.read_checkpoint(tf.train.Checkpoint(model=model), saved[c][step], partial=True)
        start = time.perf_counter()
        scores = np.array([evaluator(a) for a in archs])
        seconds = time.perf_counter() - start
        row = {
            "step": step,
            "from_step": from_step,
            **settings,
            "seconds_per_arch": round(seconds / len(archs), 3),
            "kendall_tau": rank_stats.correlation("kendall_tau", scores, truth),
            "spearman_rho": rank_stats.correlation("spearman_rho", scores, truth),
            "macs_kendall_tau": rank_stats.correlation("kendall_tau", macs, truth),
            "top1_truth": float(truth[int(np.argmax(scores))]),
            "top1_percentile": table.percentile(truth[int(np.argmax(scores))]),
            "mean_score": float(scores.mean()),
            "scores": scores.tolist(),
        }
        run_dir.atomic_write_text(out_file, json.dumps(row, indent=2) + "\n")
        rows.append(row)
        tau = row["kendall_tau"]
        print(
            f"step {step}: tau {tau['value']:.3f} [{tau['ci_low']:.3f}, {tau['ci_high']:.3f}] "
            f"(MACs {row['macs_kendall_tau']['value']:.3f}), {row['seconds_per_arch']} s/arch",
            flush=True,
        )
    rows.sort(key=lambda r: r["step"])
    per_cell = ("scores", "cells", "truth")
    summary = [{k: v for k, v in r.items() if k not in per_cell} for r in rows]
    run_dir.atomic_write_text(
        os.path.join(args.out, "tau_vs_epochs.json"), json.dumps(summary, indent=2) + "\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.get("from_step", 0) + r["step"] for r in rows]
    tau = [r["kendall_tau"]["value"] for r in rows]
    low = [r["kendall_tau"]["ci_low"] for r in rows]
    high = [r["kendall_tau"]["ci_high"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, tau, "o-", label=f"supernet ({config.calib_mode})")
    ax.fill_between(steps, low, high, alpha=0.2)
    ax.axhline(rows[0]["macs_kendall_tau"]["value"], color="gray", ls="--", label="MACs")
    ax.set_xlabel(
        f"training step (sub-supernets split from the one-shot run at step {from_step})"
        if from_step
        else "supernet training step"
    )
    ax.set_ylabel(f"Kendall tau vs ground truth ({len(archs)} cells)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "tau_vs_epochs.png"), dpi=120)


if __name__ == "__main__":
    main()
