r"""The newcomer's one command: supernet training, evolutionary search, retraining and export.

    python -m spos_tf.pipeline --flagfile=flags/quickstart.cfg            # workdir runs/quickstart
    python -m spos_tf.pipeline --flagfile=flags/tiny_pipeline.cfg --workdir=/tmp/tiny

Flags: every flag of ``python -m spos_tf.train`` (they describe the supernet stage, so a training
flag file such as ``flags/quickstart.cfg`` works unchanged), plus the pipeline's own below, whose
defaults are the quick start's. ``--workdir`` is the pipeline's folder (default
``runs/quickstart``); each stage writes into a sub-folder of it. The search stage reads its settings
from ``--search_flagfile`` (parsed with ``python -m spos_tf.search``'s flags); retraining reuses the
supernet's recipe with the ``--retrain_*`` overrides; the export the ``--export_*`` flags.
``--overwrite`` clears and redoes the stages not finished with the current settings.

Rerunning the same command resumes: finished stages are skipped, an interrupted one continues from
its own checkpoint. All logic lives in :mod:`spos_tf.pipeline.run`. Exit status: 0 done, 2 bad
input or a stage finished with other settings (the message names the fix), 3 the training loss
diverged, 1 a search candidate could not be evaluated.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, flags

from spos_tf.runs import app as app_common
from spos_tf.runs import config_flags
from spos_tf.runs.flagfiles import config_from_flagfile
from spos_tf.train import config as train_config

DEFAULT_WORKDIR = os.path.join("runs", "quickstart")
# spos_tf/pipeline/__main__.py -> the repository (flags/ is found there from another folder)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def define_flags(fv=None) -> None:
    """Defines ``spos_tf.train``'s flags and the pipeline's own on ``fv``."""
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    train_config.define_flags(fv)
    fv.set_default("workdir", DEFAULT_WORKDIR)
    fv[
        "workdir"
    ].help = "Pipeline folder: supernet/, search/, retrain/, export/, stages/, summary.json."
    fv["overwrite"].help = (
        "Clear and redo every stage not finished with the current settings "
        "(finished, unchanged stages are kept)."
    )
    flags.DEFINE_string(
        "search_flagfile",
        "flags/quickstart_search.cfg",
        "Flag file of the search stage (python -m spos_tf.search's flags; "
        "relative paths are tried in the current folder, then in the repository).",
        **d,
    )
    from spos_tf.pipeline.run import PipelineConfig

    # The pipeline's own settings: the PipelineConfig fields declared with a help text.
    config_flags.define_flags(
        PipelineConfig,
        fv,
        skip=[f.name for f in dataclasses.fields(PipelineConfig) if "help" not in f.metadata],
    )
    flags.DEFINE_list(
        "export_formats",
        None,
        "Export formats (default: saved_model,tflite,"
        "tflite_int8; no float tflite for a quantized space).",
        **d,
    )
    flags.DEFINE_integer(
        "export_calib_images", 512, "Training images for the int8 calibration.", **d
    )
    flags.DEFINE_enum(
        "export_eval_split",
        "test",
        ["holdout", "test"],
        "Images of the export report's accuracy and differences.",
        **d,
    )


def _find(path: str) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(REPO, path)
    return candidate if os.path.exists(candidate) else path


def config_from_flags(fv=None):
    """The :class:`~spos_tf.pipeline.run.PipelineConfig` of parsed flags (not yet validated).

    Raises:
      FileNotFoundError: ``--search_flagfile`` does not exist.
      ValueError: it holds a flag that ``spos_tf.search`` does not define, or a malformed one.
    """
    from spos_tf.export.run import ExportConfig
    from spos_tf.pipeline.run import PipelineConfig

    fv = flags.FLAGS if fv is None else fv
    workdir = fv["workdir"].value
    supernet = train_config.config_from_flags(fv)
    path = _find(fv["search_flagfile"].value)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--search_flagfile={fv['search_flagfile'].value!r} does not "
            f"exist (also not under {REPO})"
        )
    search_config = config_from_flagfile(
        "search",
        path,
        [
            f"--supernet_dir={os.path.join(workdir, 'supernet')}",
            f"--workdir={os.path.join(workdir, 'search')}",
        ],
    )
    if not fv["progress"].value:
        search_config = dataclasses.replace(search_config, progress=False)
    formats = fv["export_formats"].value
    export = ExportConfig(
        formats=tuple(formats) if formats else None,
        calib_images=fv["export_calib_images"].value,
        eval_split=fv["export_eval_split"].value,
    )
    return config_flags.from_flags(
        PipelineConfig,
        fv,
        supernet=supernet,
        search=search_config,
        export=export,
        flags_text=train_config.flags_text(fv),
    )


def main(argv):
    app_common.start(argv)
    from spos_tf.pipeline import run as pipeline_lib
    from spos_tf.search import tuner as search_tuner
    from spos_tf import train as train_lib

    try:
        pipeline_lib.run(config_from_flags())
    except train_lib.DivergenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except search_tuner.EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, flags.Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run_main():
    define_flags(flags.FLAGS)
    app.run(main)


if __name__ == "__main__":
    run_main()
