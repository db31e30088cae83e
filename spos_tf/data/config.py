"""``DataConfig``: the typed description of one input source, with per-data-set defaults.

Fields left at ``None`` take the value of the data set's row in ``DEFAULTS`` (or ``GENERIC`` for
other TFDS names, ``FOLDER_FLAT`` / ``FOLDER_SPLITS`` for image folders) when the pipeline resolves
the config; ``resolved()`` shows the values that will be used. The table is the one place those
defaults are written down.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional

from spos_tf.runs import config_flags
from spos_tf.runs.config_flags import field

FOLDER_PREFIX = "folder:"
AUGMENTATIONS = ("imagenet", "light", "cifar", "none")
PREPROCESSINGS = ("standard", "reference")  # spos_tf.data.preprocess.finish
EVAL_RESIZES = ("standard", "reference")  # spos_tf.data.preprocess.preprocess_for_eval


@dataclasses.dataclass(frozen=True)
class Defaults:
    """Per-data-set values for the ``None`` fields of :class:`DataConfig`."""

    image_size: int
    train_split: str
    holdout_split: str
    test_split: str
    augment: str
    cache: bool
    eval_crop_fraction: float


DEFAULTS = {
    # 8x8 digits upsampled to 32; light pad-and-crop only (a flipped digit is another digit).
    "spos_digits": Defaults(32, "train", "validation", "test", "light", True, 1.0),
    # The paper's protocol: 50,000 training images held out for search, train on the rest,
    # report on the official validation set. Too big to cache decoded images in host memory.
    "imagenet2012": Defaults(
        224, "train[:-50000]", "train[-50000:]", "validation", "imagenet", False, 0.875
    ),
    # The standard CIFAR augmentation (4-pixel zero pad, random crop, horizontal flip).
    "cifar10": Defaults(32, "train[:-5000]", "train[-5000:]", "test", "cifar", True, 1.0),
}
GENERIC = Defaults(224, "train", "validation", "test", "imagenet", False, 0.875)
# root/<class>/<image>: one split "train", sliced 80/10/10 in TFDS's slicing syntax (rounding to
# the closest example) over ImageFolder's fixed, seed-free shuffled order.
FOLDER_FLAT = Defaults(224, "train[:80%]", "train[80%:90%]", "train[90%:]", "imagenet", True, 1.0)
# root/<split>/<class>/<image>; the holdout default is the folder's "validation" or "val" split.
# A folder with only train/ and test/ (CIFAR-10 as images) needs the held-out split carved from
# train, e.g. NAS-Bench-201's halves: --train_split=train[:50%] --holdout_split=train[50%:]
# (ImageFolder's order is a fixed seed-free shuffle, so each half mixes all classes).
FOLDER_SPLITS = Defaults(224, "train", "validation", "test", "imagenet", True, 1.0)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which images to read and how to prepare them.

    Attributes:
      name: a TFDS name (``"spos_digits"``, ``"imagenet2012"``, ``"cifar10"``, ...) or
        ``"folder:<root>"`` for an image folder, either ``<root>/<class>/<image>`` (one split,
        ``train``) or ``<root>/<split>/<class>/<image>``; ``.png``, ``.jpg`` and ``.jpeg`` files.
      data_dir: TFDS data directory; ``None`` means TFDS's default (``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``). Ignored for image folders.
      manual_dir: where manually downloaded archives lie (``imagenet2012``: the two ILSVRC2012
        tars); ``None`` means ``<data_dir>/downloads/manual`` like TFDS.
      image_size: side of the square images the pipeline emits.
      train_split, holdout_split, test_split: TFDS split specs (slicing allowed, e.g.
        ``"train[-50000:]"``) for supernet training, the architecture search's held-out fitness
        and the final report.
      augment: ``"imagenet"`` (random-resized crop, horizontal flip, colour jitter 0.4),
        ``"light"`` (pad by ``image_size // 8`` and random crop back: small translations, no
        flip), ``"cifar"`` (zero-pad 4 pixels, random crop, horizontal flip: the standard CIFAR
        augmentation, ``cifar10``'s default) or ``"none"``. Applied only to the ``train`` role
        in training mode.
      cache: keep the images (not yet augmented) in host memory after the first pass: decoded,
        or, where the ``imagenet`` augmentation decodes only its crop window, the JPEG bytes.
      shuffle_buffer: examples in the shuffle buffer (capped at the split size).
      eval_crop_fraction: evaluation keeps the central square of this fraction of the shorter side
        (ImageNet's 224/256 = 0.875) before resizing to ``image_size``.
      preprocessing: the last step of every role: ``"standard"`` (RGB, ImageNet mean/std
        normalisation) or ``"reference"`` (BGR float on 0..255 without normalisation, as the
        authors' PyTorch release feeds its networks: for weights imported with
        ``spos_tf.import_reference``); ``"reference"`` also makes the ``imagenet``
        augmentation's colour jitter the release's (torchvision's ``ColorJitter`` on PIL images:
        random order, PIL's grey-level blends on ``uint8``;
        ``preprocess.reference_color_jitter``). Crop and resize are ``eval_resize``'s either way.
      eval_resize: how evaluation (every role without augmentation) crops and resizes:
        ``"standard"`` (the default) keeps the central ``eval_crop_fraction`` of the shorter side
        and resizes it to ``image_size`` bilinearly in float; ``"reference"`` is the authors'
        release (its ``OpencvResize(256)`` + ``CenterCrop(224)``): the shorter side is resized to
        ``round(image_size / eval_crop_fraction)`` (256 for ImageNet's 224 and 0.875) with
        OpenCV's fixed-point bilinear on ``uint8``, reproduced bit for bit in TensorFlow ops
        (``preprocess.opencv_resize_uint8``), then the central ``image_size`` square is cropped at
        torchvision's offsets ``int(round((side - image_size) / 2.))``; JPEGs decoded whole are
        decoded with the accurate integer IDCT, as PIL (the release's loader) does, not TF's
        default fast one (up to ~12 levels apart). The crop lands where the standard one does;
        the pixels are the release's. Costs about 2-3 ms of CPU per ImageNet
        image (5-8x the standard resize).
      data_service: ``None`` (the default) prepares the training batches on this host;
        ``"grpc://<dispatcher>:<port>"`` has the workers of a ``tf.data.experimental.service``
        cluster prepare them (``processing_mode="distributed_epoch"``): for more images per
        second than this host's cores supply. Only the ``train`` role in training mode; batch
        order then depends on worker timing, and a resumed run starts a new stream instead of
        replaying the interrupted one (README "Data", "More input throughput").

    The fields with a flag are flags of the training app (``--dataset`` sets ``name``); the
    others are filled from the data set's defaults or by the run (``image_size`` follows the
    space).
    """

    name: str = field("spos_digits", "TFDS name or folder:<root>.", flag="dataset")
    data_dir: Optional[str] = field(
        None, "TFDS data directory (default ~/tensorflow_datasets).", neutral=True
    )
    manual_dir: Optional[str] = field(
        None,
        "Manually downloaded archives (imagenet2012 tars); default <data_dir>/downloads/manual.",
        neutral=True,
    )
    image_size: Optional[int] = field(None, low=1, flag=False)
    train_split: Optional[str] = field(None, "Training split spec (default: the data set's).")
    holdout_split: Optional[str] = field(None, "Held-out split for evaluation and search.")
    test_split: Optional[str] = field(None, "Test split.")
    augment: Optional[str] = field(
        None, "Training augmentation (default: the data set's).", choices=AUGMENTATIONS
    )
    cache: Optional[bool] = field(None, flag=False)
    shuffle_buffer: int = field(10_000, "Shuffle buffer (examples).", low=1)
    eval_crop_fraction: Optional[float] = field(None, low=0.0, low_open=True, high=1.0, flag=False)
    preprocessing: str = field(
        "standard",
        "Network input: standard (RGB, mean/std normalised) or reference (BGR 0..255, "
        "as the authors' release; for imported weights).",
        choices=PREPROCESSINGS,
    )
    eval_resize: str = field(
        "standard",
        "Evaluation crop and resize: standard (central eval_crop_fraction of the short side, "
        "float bilinear resize) or reference (the authors' release: short side to "
        "image_size / eval_crop_fraction, 256 on ImageNet, with OpenCV's bilinear on uint8, "
        "then centre crop image_size).",
        choices=EVAL_RESIZES,
    )
    data_service: Optional[str] = field(
        None,
        "Address grpc://<dispatcher>:<port> of a tf.data service whose workers prepare the "
        "training batches (README: More input throughput).",
        neutral=True,
    )

    @property
    def is_folder(self) -> bool:
        return self.name.startswith(FOLDER_PREFIX)

    @property
    def folder_root(self) -> str:
        """The image folder's root (``name`` without ``"folder:"``, ``~`` expanded)."""
        if not self.is_folder:
            raise ValueError(f"DataConfig name {self.name!r} is not an image folder")
        return os.path.expanduser(self.name[len(FOLDER_PREFIX) :])

    def validate(self) -> "DataConfig":
        """Checks every field's type and range without touching the file system (bounds and
        choices from the fields' metadata, :func:`spos_tf.runs.config_flags.check_fields`).

        Returns:
          ``self``, so that ``DataConfig(...).validate()`` can be chained.

        Raises:
          ValueError: naming the bad field and quoting its value.
        """
        from tensorflow_datasets.core import splits as splits_lib  # parser only, no I/O

        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"DataConfig.name must be a non-empty string, got {self.name!r}")
        if self.is_folder and not self.name[len(FOLDER_PREFIX) :].strip():
            raise ValueError(f"DataConfig.name {self.name!r}: give the folder, 'folder:<root>'")
        if self.data_service is not None and not (
            isinstance(self.data_service, str)
            and re.fullmatch(r"[a-z][a-z0-9+]*://[^/\s:]+:\d+", self.data_service)
        ):
            raise ValueError(
                f"DataConfig.data_service must be the tf.data service dispatcher's address "
                f"'<protocol>://<host>:<port>', e.g. 'grpc://dispatcher:5000', or None; got "
                f"{self.data_service!r}"
            )
        config_flags.check_fields(self)
        for split in ("train_split", "holdout_split", "test_split"):
            value = getattr(self, split)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"DataConfig.{split} must be a TFDS split spec, got {value!r}")
            try:
                splits_lib.AbstractSplit.from_spec(value)
            except (ValueError, NotImplementedError) as e:
                raise ValueError(
                    f"DataConfig.{split}={value!r} is not a TFDS split spec such as 'train', "
                    f"'train[:-50000]' or 'train[80%:90%]': {e}"
                ) from None
        if self.train_split is not None and self.train_split == self.holdout_split:
            raise ValueError(
                f"DataConfig.holdout_split equals train_split ({self.train_split!r}); the search "
                "needs images the supernet was not trained on"
            )
        return self

    def resolved(self, defaults: Defaults | None = None) -> "DataConfig":
        """A copy with every ``None`` field filled from ``defaults``, validated.

        Args:
          defaults: the row to use; ``None`` looks ``name`` up in ``DEFAULTS`` (``GENERIC`` if
            absent). Image folders need the row for their layout, chosen by the pipeline.
        """
        if defaults is None:
            defaults = DEFAULTS.get(self.name, GENERIC)
        filled = {
            f.name: getattr(defaults, f.name)
            for f in dataclasses.fields(Defaults)
            if getattr(self, f.name) is None
        }
        return dataclasses.replace(self, **filled).validate()
