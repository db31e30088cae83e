r"""Imports the authors' released SPOS weights (megvii-model/SinglePathOneShot, and block + channel
networks of megvii-model/ShuffleNet-Series ``OneShot/``) as a spos_tf run.

    python -m spos_tf.import_reference --checkpoint=checkpoint-150000.pth.tar --kind=supernet \
        --workdir=/ckpt/reference_supernet
    python -m spos_tf.search --flagfile=flags/search.cfg --supernet_dir=/ckpt/reference_supernet \
        --data_dir=$TFDS --workdir=/ckpt/reference_search
    python -m spos_tf.import_reference --checkpoint=eval_model.npz --kind=standalone \
        --workdir=/ckpt/reference_retrained          # then spos_tf.export --checkpoint=...
    python -m spos_tf.import_reference --checkpoint=oneshot_328m.npz --kind=standalone \
        --workdir=/ckpt/shufflenet_series_oneshot    # blocks and channel scales off the shapes

The written run uses ``padding=reference``, ``preprocessing=reference`` and
``eval_resize=reference`` (the release's symmetric padding, BGR 0..255 input and OpenCV resize to
256 + centre crop 224), so its logits equal the release's
(``benchmarks/reference_parity.py``). ``.pth.tar`` needs PyTorch (``pip install 'spos_tf[torch]'``);
an ``.npz`` of the state_dict does not: see :mod:`spos_tf.import_reference.convert` for the conversion,
the tensor mapping and every difference handled.

The flags only build a :class:`spos_tf.import_reference.convert.ImportConfig`. Exit status: 0 done, 2 bad
input (the message names the fix and every bad tensor; nothing was written, a run already in
``--workdir`` is untouched).
"""

from __future__ import annotations

import sys

from absl import app, flags

from spos_tf.runs import app as app_common


def define_flags(fv=None) -> None:
    """Defines the app's flags on ``fv`` (default ``absl.flags.FLAGS``); defaults are
    ``ImportConfig``'s."""
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string(
        "checkpoint",
        None,
        "The release's .pth.tar (needs PyTorch) or an .npz of its state_dict.",
        **d,
    )
    flags.DEFINE_enum(
        "kind",
        "supernet",
        ["supernet", "standalone"],
        "supernet: Supernet/checkpoint-150000.pth.tar; standalone: an Evaluation model "
        "(or a ShuffleNet-Series OneShot/ model, channel scales included).",
        **d,
    )
    flags.DEFINE_string("workdir", None, "Run directory to write (config.json, checkpoints/).", **d)
    flags.DEFINE_string(
        "arch",
        None,
        "Stand-alone: the architecture text, ops or ops|channel-scale indices (default: "
        "read off the tensor shapes; must match them when given).",
        **d,
    )
    flags.DEFINE_bool(
        "overwrite", False, "Replace a run in --workdir once the import succeeded.", **d
    )
    flags.DEFINE_string(
        "dataset", "imagenet2012", "Data set the run's config names for search and export.", **d
    )
    flags.DEFINE_string("data_dir", None, "TFDS data directory stored in the run's config.", **d)


def config_from_flags(fv=None):
    """The :class:`~spos_tf.import_reference.convert.ImportConfig` of parsed flags (not yet validated)."""
    import dataclasses

    from spos_tf.import_reference.convert import ImportConfig

    fv = flags.FLAGS if fv is None else fv
    return ImportConfig(**{f.name: fv[f.name].value for f in dataclasses.fields(ImportConfig)})


def main(argv):
    app_common.start(argv)
    from spos_tf.import_reference import convert as reference_import

    try:
        reference_import.run(config_from_flags(), stream=sys.stdout)
    except (ValueError, FileNotFoundError) as e:  # ReferenceImportError, RunDirError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run_main():
    define_flags()
    flags.mark_flags_as_required(["checkpoint", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run_main()
