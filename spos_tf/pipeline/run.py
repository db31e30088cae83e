r"""The whole method in one call: supernet training, evolutionary search, retraining, export.

The library behind ``python -m spos_tf.pipeline``. Each stage calls another app's library with a
typed config (no subprocesses)::

    supernet  train_lib.run(TrainConfig)       -> <workdir>/supernet/  (spos_tf.train run)
    search    search_run.run(SearchConfig)     -> <workdir>/search/    (history.csv, best.json,
                                                                        search.png)
    retrain   train_lib.run(TrainConfig(arch=best))  -> <workdir>/retrain/
    export    export_lib.run(ExportConfig)      -> <workdir>/export/    (saved_model/, *.tflite,
                                                                        export_report.json)

Resuming: a finished stage leaves ``<workdir>/stages/<stage>.done``, a JSON object with the stage's
config, its summary and its run time. Rerunning skips every stage finished with the same settings
(neutral settings such as progress display or checkpoint period aside); a stage that was
interrupted resumes through its app's own state (training checkpoints, the search oracle's
trials). A stage finished with *other* settings is refused (the message lists the differences)
unless ``overwrite`` is set: then every stage not finished with the current settings is cleared and
run from scratch, while finished, unchanged stages are kept (changing only the export settings
redoes only the export). The retraining settings are the supernet's (space, data, batch size,
optimizer, schedule) with the architecture found by the search and ``retrain_*`` overrides.

The final summary (``<workdir>/summary.json``, also printed) names the best architecture, its MACs,
the search's score of it (held-out accuracy with inherited supernet weights: the split the search
selected it on, so biased upwards), its accuracy after retraining and that of the exported models
(on the test split by default: data the search never saw), the exported files and the search plot.

Why one module of this size: the four stages and their resumable markers are one sequence; each
stage is a few lines calling another app's library.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import sys
import time
from typing import Callable, Optional

from spos_tf.runs import run_dir
from spos_tf.runs.config_flags import check_fields, field
from spos_tf.export.run import ExportConfig
from spos_tf.runs.progress import format_duration
from spos_tf.search.config import SearchConfig
from spos_tf.train import NEUTRAL_FIELDS as TRAIN_NEUTRAL
from spos_tf.train import TrainConfig

STAGES_DIR = "stages"
SUMMARY_FILE = "summary.json"
STAGE_NAMES = ("supernet", "search", "retrain", "export")
# Settings that do not change a stage's result: a finished stage is reused across them. Training's
# own, plus the search's data folder and cache and the stage folders the pipeline sets. (Not the
# search's resume-neutral max_trials and algorithm: they change the stage's result.)
NEUTRAL = TRAIN_NEUTRAL + ("data_dir", "cache_mb", "out", "checkpoint", "supernet_dir")


class PipelineError(ValueError):
    """A pipeline that cannot run as asked (bad settings, a stage finished with other settings)."""


# ------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Settings of one pipeline run.

    Attributes:
      workdir: the pipeline's folder (stage folders, stage markers, summary).
      supernet: the supernet training config (its ``workdir`` is replaced by
        ``<workdir>/supernet``; ``arch`` must be None).
      search: the search config (``supernet_dir`` and ``workdir`` are replaced).
      export: the export config (``checkpoint``, ``out`` and ``arch`` are replaced).
      retrain_steps, retrain_learning_rate: retraining overrides of the supernet's ``steps`` and
        ``learning_rate`` (None: the supernet's).
      retrain_final_bn_batches: retraining ends with exact BN statistics on this many batches.
      overwrite: clear and redo the stages not finished with these settings (see module doc).
      flags_text: the supernet run's effective flags (``flags.txt`` of the training stages; the
        retraining stage's gets its overrides appended).
    """

    workdir: str = "runs/quickstart"
    supernet: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    retrain_steps: Optional[int] = field(
        None, "Retraining steps (default: the supernet's --steps).", low=1
    )
    retrain_learning_rate: Optional[float] = field(
        None, "Retraining peak learning rate (default: the supernet's --learning_rate)."
    )
    retrain_final_bn_batches: int = field(
        10, "Retraining ends with exact BN statistics on this many training batches.", low=0
    )
    overwrite: bool = False
    flags_text: Optional[str] = None

    def stage_dir(self, name: str) -> str:
        return os.path.join(os.fspath(self.workdir), name)

    def supernet_config(self) -> TrainConfig:
        return dataclasses.replace(
            self.supernet, workdir=self.stage_dir("supernet"), overwrite=False
        )

    def search_config(self) -> SearchConfig:
        return dataclasses.replace(
            self.search,
            supernet_dir=self.stage_dir("supernet"),
            workdir=self.stage_dir("search"),
            overwrite=False,
        )

    def retrain_config(self, arch: str) -> TrainConfig:
        """The retraining config of ``arch``: the supernet's recipe with the ``retrain_*``
        overrides (no MACs range: that constrains supernet sampling only)."""
        changes = dict(
            workdir=self.stage_dir("retrain"),
            overwrite=False,
            arch=arch,
            min_macs=None,
            max_macs=None,
            sampling="uniform",
            cost_bins=None,
            eval_split=None,  # resolves to "test": the search never saw it
            final_bn_batches=self.retrain_final_bn_batches,
        )
        if self.retrain_steps is not None:
            changes["steps"] = self.retrain_steps
        if self.retrain_learning_rate is not None:
            changes["learning_rate"] = self.retrain_learning_rate
        return dataclasses.replace(self.supernet, **changes)

    def export_config(self) -> ExportConfig:
        return dataclasses.replace(
            self.export,
            checkpoint=self.stage_dir("retrain"),
            out=self.stage_dir("export"),
            arch=None,
        )

    def validate(self) -> "PipelineConfig":
        """Checks every stage's settings (as far as they are known before the search) and the
        workdir; touches no files. Returns ``self``.

        Raises:
          PipelineError: naming the setting and quoting the bad value.
        """
        if not isinstance(self.workdir, (str, os.PathLike)) or not str(self.workdir).strip():
            raise PipelineError("--workdir is required")
        workdir = os.fspath(self.workdir)
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise PipelineError(f"--workdir={workdir!r} is a file, not a folder")
        if self.supernet.arch is not None:
            raise PipelineError(
                f"--arch={self.supernet.arch!r}: the pipeline searches the "
                f"architecture; retrain a given one with python -m spos_tf.train"
            )
        if self.supernet.uniform_bits is not None:
            raise PipelineError(
                f"--uniform_bits={self.supernet.uniform_bits}: the pipeline "
                f"searches the architecture; retrain the uniform baseline with "
                f"python -m spos_tf.train --uniform_bits"
            )
        try:
            check_fields(dataclasses.replace(self, workdir=workdir))
            self.supernet_config().validate()
            self.search_config().validate()
            self.retrain_config("0").validate()  # the architecture comes from the search
            self.export_config().validate()
        except ValueError as e:
            raise PipelineError(str(e)) from None
        return self


# ------------------------------------------------------------------------------- stages
@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
      name: marker name (``<workdir>/stages/<name>.done``) and stage folder.
      title: what the progress display says.
      config: ``config(summaries) -> dict``: the stage's settings (JSON-ready), computed from the
        summaries of the stages before it; compared with a finished stage's marker.
      run: ``run(summaries) -> dict``: runs (or resumes) the stage, returns its JSON-ready
        summary.
      describe: ``describe(summary) -> str``: one line for the progress display.
      folder: the folder a redo clears (None: nothing to clear).
    """

    name: str
    title: str
    config: Callable[[dict], dict]
    run: Callable[[dict], dict]
    describe: Callable[[dict], str]
    folder: Optional[str] = None


def marker_path(workdir: str, name: str) -> str:
    return os.path.join(workdir, STAGES_DIR, f"{name}.done")


def read_marker(workdir: str, name: str) -> dict | None:
    """The marker of a finished stage, or None (a damaged marker counts as unfinished)."""
    try:
        with open(marker_path(workdir, name)) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "config" in marker else None


def _clear(stage: Stage, workdir: str) -> None:
    path = marker_path(workdir, stage.name)
    if os.path.exists(path):
        os.remove(path)
    if stage.folder and os.path.isdir(stage.folder):
        shutil.rmtree(stage.folder)


def run_stages(stages: list, workdir: str, *, overwrite: bool = False, stream=None) -> dict:
    """Runs ``stages`` in order, skipping those finished with the same settings.

    Returns:
      ``{stage name: {"summary", "seconds", "skipped"}}``.

    Raises:
      PipelineError: a stage finished with other settings and ``overwrite`` is not set (nothing
        of that stage or later ones was touched).
    """
    stream = sys.stdout if stream is None else stream
    summaries, results = {}, {}
    n = len(stages)
    for i, stage in enumerate(stages, 1):
        config = run_dir.normalized(stage.config(summaries))
        marker = read_marker(workdir, stage.name)
        if marker is not None:
            diff = run_dir.config_diff(marker["config"], config, NEUTRAL)
            if not diff:
                summaries[stage.name] = marker["summary"]
                results[stage.name] = {
                    "summary": marker["summary"],
                    "seconds": marker.get("seconds"),
                    "skipped": True,
                }
                _say(
                    stream,
                    f"[{i}/{n}] {stage.name}: finished earlier (in "
                    f"{format_duration(marker.get('seconds'))}) - "
                    f"{stage.describe(marker['summary'])}",
                )
                continue
            if not overwrite:
                shown = "; ".join(diff[:6]) + (
                    f"; ... ({len(diff)} differences)" if len(diff) > 6 else ""
                )
                raise PipelineError(
                    f"stage {stage.name!r} in {workdir!r} finished with other settings ({shown}). "
                    f"Rerun with the same flags, pass --overwrite to redo it and the stages after "
                    f"it, or use another --workdir"
                )
        if overwrite:
            _clear(stage, workdir)
        _say(stream, f"[{i}/{n}] {stage.name}: {stage.title}")
        start = time.monotonic()
        summary = run_dir.normalized(stage.run(summaries))
        seconds = time.monotonic() - start
        run_dir.atomic_write_text(
            marker_path(workdir, stage.name),
            json.dumps(
                {
                    "stage": stage.name,
                    "config": config,
                    "summary": summary,
                    "seconds": round(seconds, 1),
                    "finished": datetime.datetime.now().isoformat(timespec="seconds"),
                },
                indent=2,
                sort_keys=True,
            )
            + "\n",
        )
        summaries[stage.name] = summary
        results[stage.name] = {"summary": summary, "seconds": seconds, "skipped": False}
        _say(
            stream,
            f"[{i}/{n}] {stage.name}: done in {format_duration(seconds)} - "
            f"{stage.describe(summary)}",
        )
    return results


def _say(stream, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


# ------------------------------------------------------------------------------- the four
def _with_flags(text: Optional[str], **values) -> Optional[str]:
    """``text`` (one ``--name=value`` a line) with the lines of ``values`` replaced."""
    if text is None:
        return None
    names = set(values) | {"overwrite"}
    lines = [
        line
        for line in text.splitlines()
        if line.strip() and line.lstrip("-").split("=", 1)[0].removeprefix("no") not in names
    ]
    lines += [f"--{k}={v}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def _best_by_algorithm(rows: list) -> dict:
    """``{algorithm: best accuracy}`` of the search's rows (``search_run.run``'s "rows", the
    rows of history.csv)."""
    best: dict = {}
    for row in rows:
        best[row["algorithm"]] = max(best.get(row["algorithm"], 0.0), float(row["accuracy"]))
    return best


def make_stages(config: PipelineConfig, stream) -> list:
    """The four stages of ``config`` (see the module docstring)."""
    from spos_tf.export import run as export_lib
    from spos_tf.search import results as search_results
    from spos_tf.search.run import run as run_search
    from spos_tf import train as train_lib

    def supernet(_):
        cfg = config.supernet_config()
        record = train_lib.run(
            cfg, flags_text=_with_flags(config.flags_text, workdir=cfg.workdir), stream=stream
        )
        return {
            "workdir": cfg.workdir,
            "steps": cfg.steps,
            "val_accuracy": record["val_accuracy"],
            "val_accuracy_min": record.get("val_accuracy_min"),
            "val_accuracy_max": record.get("val_accuracy_max"),
            "eval_paths": len(record.get("val_paths", [])),
            "eval_split": record.get("eval_split"),
        }

    def search(_):
        cfg = config.search_config()
        result = run_search(cfg, stream=stream)
        best = result["best"]
        if not best:
            raise PipelineError("the search evaluated no candidate; see the messages above")
        folder = cfg.workdir
        return {
            "workdir": folder,
            "arch": best["arch"],
            "accuracy": best["accuracy"],
            "costs": best["costs"],
            "algorithm": best["algorithm"],
            "evaluated": best["evaluated"],
            "best_by_algorithm": _best_by_algorithm(result["rows"]),
            "best_json": os.path.join(folder, search_results.BEST_FILE),
            "plot": os.path.join(folder, search_results.PLOT_FILE),
        }

    def retrain(summaries):
        cfg = config.retrain_config(summaries["search"]["arch"])
        text = _with_flags(
            config.flags_text,
            workdir=cfg.workdir,
            arch=cfg.arch,
            steps=cfg.steps,
            learning_rate=cfg.learning_rate,
            min_macs=None,
            max_macs=None,
            sampling=None,
            cost_bins=None,
            eval_split=None,
            final_bn_batches=cfg.final_bn_batches,
        )
        record = train_lib.run(cfg, flags_text=text, stream=stream)
        return {
            "workdir": cfg.workdir,
            "arch": cfg.arch,
            "steps": cfg.steps,
            "val_accuracy": record["val_accuracy"],
            "eval_split": record.get("eval_split"),
        }

    def export(_):
        cfg = config.export_config()
        report = export_lib.run(cfg, stream=stream)
        formats = report["formats"]
        return {
            "out": cfg.out,
            "report": os.path.join(cfg.out, export_lib.REPORT_FILE),
            "eval": report["eval"],
            "files": {fmt: r["path"] for fmt, r in formats.items()},
            "size_bytes": {fmt: r["size_bytes"] for fmt, r in formats.items()},
            "accuracy": {fmt: r["accuracy"] for fmt, r in formats.items()},
            "top1_agreement": {fmt: r["top1_agreement"] for fmt, r in formats.items()},
            "max_abs_diff": {fmt: r["max_abs_diff"] for fmt, r in formats.items()},
        }

    sup, sea = config.supernet_config(), config.search_config()
    return [
        Stage(
            "supernet",
            f"training the supernet ({sup.steps} steps, batch {sup.batch_size}, "
            f"space {sup.space}) -> {sup.workdir}",
            lambda _: sup.to_dict(),
            supernet,
            lambda s: (
                f"mean held-out accuracy of {s['eval_paths']} random paths {s['val_accuracy']:.4f}"
            ),
            folder=sup.workdir,
        ),
        Stage(
            "search",
            f"{' + '.join(sea.algorithms)} search on the supernet ({sea.max_trials} "
            f"candidates each"
            + (
                f", {', '.join(f'{k} <= {v:.4g}' for k, v in sea.limits.items())}"
                if sea.limits
                else ""
            )
            + f") -> {sea.workdir}",
            lambda _: sea.to_dict(),
            search,
            lambda s: (
                f"best {s['arch']} held-out accuracy {s['accuracy']:.4f} with supernet "
                f"weights ({s['costs']['macs'] / 1e6:.2f}M MACs)"
            ),
            folder=sea.workdir,
        ),
        Stage(
            "retrain",
            f"retraining the best architecture from scratch -> {config.stage_dir('retrain')}",
            lambda s: config.retrain_config(s["search"]["arch"]).to_dict(),
            retrain,
            lambda s: (
                f"{s['arch']} {'held-out' if s.get('eval_split') == 'holdout' else 'test'}"
                f" accuracy {s['val_accuracy']:.4f}"
            ),
            folder=config.stage_dir("retrain"),
        ),
        Stage(
            "export",
            f"exporting SavedModel / TFLite -> {config.stage_dir('export')}",
            lambda _: config.export_config().to_dict(),
            export,
            lambda s: ", ".join(f"{fmt} {acc:.4f}" for fmt, acc in s["accuracy"].items()),
            folder=config.stage_dir("export"),
        ),
    ]


# ------------------------------------------------------------------------------- run
def run(config: PipelineConfig, stream=None) -> dict:
    """Runs (or resumes) the pipeline; returns the summary (also in ``summary.json``).

    Raises:
      PipelineError: bad settings, or a stage finished with other settings (without
        ``overwrite``); and whatever the stages' libraries raise (their bad-input errors are
        ValueErrors, raised before the stage writes anything).
    """
    stream = sys.stdout if stream is None else stream
    config = config.validate()
    workdir = os.fspath(config.workdir)
    start = time.monotonic()
    _say(
        stream,
        f"spos_tf pipeline: supernet -> search -> retrain -> export in {workdir} "
        f"(finished stages are skipped; rerun the same command to resume)",
    )
    results = run_stages(
        make_stages(config, stream), workdir, overwrite=config.overwrite, stream=stream
    )
    summary = make_summary(config, results, time.monotonic() - start)
    run_dir.atomic_write_text(
        os.path.join(workdir, SUMMARY_FILE), json.dumps(summary, indent=2, sort_keys=True) + "\n"
    )
    _say(stream, format_summary(summary))
    return summary


def make_summary(config: PipelineConfig, results: dict, seconds: float) -> dict:
    s = {name: r["summary"] for name, r in results.items()}
    search, retrain, export = s["search"], s["retrain"], s["export"]
    total = sum(r["seconds"] or 0.0 for r in results.values())
    return {
        "workdir": os.fspath(config.workdir),
        "space": config.supernet.space,
        "arch": search["arch"],
        "costs": search["costs"],
        "found_by": search["algorithm"],
        "evaluated": search["evaluated"],
        "best_by_algorithm": search.get("best_by_algorithm", {}),
        "supernet_mean_path_accuracy": s["supernet"]["val_accuracy"],
        "supernet_eval_split": s["supernet"].get("eval_split"),
        "search_holdout_accuracy": search["accuracy"],
        "retrained_accuracy": retrain["val_accuracy"],
        "retrain_steps": retrain["steps"],
        "eval_split": retrain.get("eval_split"),
        "export": {
            "eval": export["eval"],
            "accuracy": export["accuracy"],
            "top1_agreement": export["top1_agreement"],
            "files": export["files"],
            "size_bytes": export["size_bytes"],
            "report": export["report"],
        },
        "plots": {"search": search["plot"]},
        "best_json": search["best_json"],
        "stage_seconds": {name: r["seconds"] for name, r in results.items()},
        "skipped": [name for name, r in results.items() if r["skipped"]],
        "seconds_all_stages": round(total, 1),
        "seconds_this_run": round(seconds, 1),
    }


def format_summary(summary: dict) -> str:
    """The summary as the pipeline prints it."""
    costs = summary["costs"]
    split = "held-out" if summary.get("eval_split", "holdout") == "holdout" else "test"
    search_score = summary.get("search_holdout_accuracy", summary.get("supernet_path_accuracy"))
    export = summary["export"]
    by_algorithm = summary.get("best_by_algorithm") or {}
    lines = [
        f"== Summary: {summary['workdir']} (all stages {format_duration(summary['seconds_all_stages'])}"
        f", this run {format_duration(summary['seconds_this_run'])}) ==",
        f"Best architecture   {summary['arch']} ({summary['space']}; "
        f"{costs['macs'] / 1e6:.2f}M MACs, {costs['params'] / 1e3:.1f}k params), found by "
        f"{summary['found_by']} search among {summary['evaluated']} candidates"
        + (
            " (best per algorithm: "
            + ", ".join(f"{k} {v:.4f}" for k, v in by_algorithm.items())
            + ")"
            if len(by_algorithm) > 1
            else ""
        ),
        f"{'Search score':<20}held-out top-1 {search_score:.4f} with inherited supernet weights "
        f"(BN recalibrated; the split the search selected on)",
        f"{split.capitalize() + ' top-1':<20}retrained {summary['retrained_accuracy']:.4f} "
        f"({summary['retrain_steps']} steps)",
        "Exported models     "
        + ", ".join(f"{fmt} {acc:.4f}" for fmt, acc in export["accuracy"].items())
        + f" on {export['eval']['images']} {export['eval']['split']} images"
        + (
            f"; int8 agrees with Keras on {100 * export['top1_agreement']['tflite_int8']:.1f}%"
            if "tflite_int8" in export["top1_agreement"]
            else ""
        ),
    ]
    files = list(export["files"].items()) + [("report", export["report"])]
    for k, (fmt, path) in enumerate(files):
        size = export["size_bytes"].get(fmt)
        lines.append(
            ("Files               " if k == 0 else " " * 20)
            + path
            + (f" ({size / 1024:.0f} KiB)" if size else "")
        )
    lines.append(f"Plots               {summary['plots']['search']}")
    lines.append(
        f"Best architecture   {summary['best_json']} (python -m spos_tf.train "
        f"--arch=<this file> retrains it)"
    )
    return "\n".join(lines)
