"""The settings of one export (:class:`ExportConfig`, the flags of ``spos_tf.export``) and the
names of what it writes. Each setting is written once, here: ``spos_tf.export`` derives its flags
from the fields (:mod:`spos_tf.runs.config_flags`)."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from spos_tf.runs import choices, config_flags
from spos_tf.runs import run_dir
from spos_tf.runs.choices import EVAL_SPLITS
from spos_tf.runs.config_flags import field

FORMATS = ("saved_model", "tflite", "tflite_int8", "tflite_int4")
FILES = {
    "saved_model": "saved_model",
    "tflite": "model_float.tflite",
    "tflite_int8": "model_int8.tflite",
    "tflite_int4": "model_int4.tflite",
}
REPORT_FILE = "export_report.json"
SIGNATURE = "serving_default"
INPUT_NAME = "images"
INPUT_CONTRACT = (
    "uint8 [batch, S, S, 3] RGB images at the model resolution S, 0..255; "
    "normalised inside: (image - MEAN_RGB) / STDDEV_RGB"
)


class ExportError(ValueError):
    """Bad input found before anything was written (settings, architecture, formats)."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Settings of one export (the flags of ``spos_tf.export``); see each field's help.

    ``formats`` None: every format the space supports (no float ``tflite`` for a quantized space;
    ``tflite_int4`` only for a quantized space with ``fold_bn``). ``calib_images`` (training
    images of the ``calib`` role, in stored order) feed the integer converters' calibration and,
    for inherited weights, the BN recalibration. ``eval_split`` ``"holdout"`` is biased upwards
    for a searched architecture (the search selected on it).
    """

    checkpoint: Optional[str] = field(
        None,
        "A spos_tf.train run directory: a retrained stand-alone network, or a supernet "
        "(needs --arch).",
    )
    out: Optional[str] = field(None, "Output folder (saved_model/, *.tflite, export_report.json).")
    space: Optional[str] = field(
        None, "Registered search space name; default: the run's (must match when given)."
    )
    arch: Optional[str] = field(
        None,
        "Architecture text or a JSON file with an 'arch' field (best.json); required for "
        "a supernet run.",
    )
    formats: Optional[tuple] = field(
        None,
        f"Comma-separated subset of {','.join(FORMATS)} (default: all the space "
        "supports; no float tflite for a quantized space, tflite_int4 needs --fold_bn).",
    )
    data_dir: Optional[str] = field(None, "TFDS data directory (default: the run's).")
    calib_images: int = field(
        512,
        "Training images for integer calibration and, with inherited weights, BN recalibration.",
        low=1,
    )
    calib_batch_size: int = field(64, "Calibration batch size.", low=1)
    eval_split: str = field(
        "test",
        "Images of the report's accuracy and differences (default test: data the "
        "search never saw).",
        choices=EVAL_SPLITS,
    )
    eval_images: Optional[int] = field(
        None, "Use the first this many images of --eval_split (default: all).", low=1
    )
    eval_batch_size: int = field(100, "Evaluation batch size.", low=1)

    @property
    def calib_batches(self) -> int:
        """Calibration batches: ``ceil(calib_images / calib_batch_size)``
        (:func:`spos_tf.runs.choices.calib_batches`, the rule of every app)."""
        return choices.calib_batches(self.calib_images, self.calib_batch_size)

    def validate(self) -> "ExportConfig":
        """Checks every field without touching files; returns ``self``.

        Raises:
          ExportError: naming the flag and quoting the bad value.
        """
        for name in ("checkpoint", "out"):
            value = getattr(self, name)
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                raise ExportError(f"--{name} is required")
        if self.formats is not None:
            formats = tuple(self.formats)
            unknown = [f for f in formats if f not in FORMATS]
            if unknown or not formats or len(set(formats)) != len(formats):
                raise ExportError(
                    f"--formats must be distinct names from {', '.join(FORMATS)}; "
                    f"got {','.join(map(str, formats)) or '(empty)'}"
                )
        try:  # types, bounds, choices (paths may be os.PathLike)
            config_flags.check_fields(
                dataclasses.replace(
                    self, checkpoint=os.fspath(self.checkpoint), out=os.fspath(self.out)
                )
            )
        except ValueError as e:
            raise ExportError(str(e)) from None
        if self.arch is not None and not self.arch.strip():
            raise ExportError(
                f"--arch must be an architecture text or a JSON file, got {self.arch!r}"
            )
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["checkpoint"], d["out"] = os.fspath(self.checkpoint), os.fspath(self.out)
        return run_dir.normalized(d)


__all__ = [
    "EVAL_SPLITS",
    "ExportConfig",
    "ExportError",
    "FILES",
    "FORMATS",
    "INPUT_CONTRACT",
    "INPUT_NAME",
    "REPORT_FILE",
    "SIGNATURE",
]
