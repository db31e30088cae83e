"""Opening a data set by name: a TFDS builder, prepared offline or with a clear error, or a folder.

:func:`open_source` turns a :class:`~spos_tf.data.config.DataConfig` into a :class:`Source`, which
reads any split spec as ``(uint8 [H, W, C], int32 label)`` examples. It never downloads: TFDS's GCS
mirror is disabled, ``spos_digits`` prepares from the scikit-learn wheel, ``imagenet2012`` prepares
only from the manual tars, and any other data set must already be prepared in ``data_dir``.
Every failure names what to put where, and is raised before anything is written into ``data_dir``.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import os
import random

import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import naming
from tensorflow_datasets.core import splits as splits_lib

from spos_tf.data import config as config_lib
from spos_tf.data import digits

IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Builders this module prepares itself because preparation needs no network.
_OFFLINE_BUILDERS = (digits.SposDigits,)


@dataclasses.dataclass(frozen=True)
class Source:
    """An opened data set.

    Attributes:
      builder: the TFDS builder (prepared), or a ``tfds.folder_dataset.ImageFolder``.
      defaults: the row of per-data-set defaults for this source's ``None`` config fields.
      description: how error messages name the source.
      native_slicing: whether ``builder.as_dataset`` understands sliced specs (folders do not:
        this module slices them itself with TFDS's own arithmetic).
    """

    builder: tfds.core.DatasetBuilder
    defaults: config_lib.Defaults
    description: str
    native_slicing: bool = True

    @property
    def num_classes(self) -> int:
        return self.builder.info.features["label"].num_classes

    @property
    def split_names(self) -> list[str]:
        return sorted(self.builder.info.splits.keys())

    def absolute(self, spec: str, field: str = "split") -> list[tuple[str, int, int]]:
        """``spec`` as TFDS's absolute ``(split, start, stop)`` slices.

        Raises:
          ValueError: a split does not exist, or a slice exceeds its split.
        """
        missing = [name for name in _split_names_in(spec) if name not in self.builder.info.splits]
        if missing:
            raise ValueError(
                f"DataConfig.{field}={spec!r}: {self.description} has no split {missing[0]!r}; "
                f"its splits are {self.split_names}. Set {field} to one of them, or slice one "
                f"(https://www.tensorflow.org/datasets/splits): {self._split_fix(field)}."
            )
        splits = self.builder.info.splits
        try:
            instructions = splits_lib.AbstractSplit.from_spec(spec).to_absolute(splits)
        except ValueError as e:
            raise ValueError(f"DataConfig.{field}={spec!r} on {self.description}: {e}") from None
        # TFDS writes an open boundary as None.
        return [
            (i.splitname, i.from_ or 0, splits[i.splitname].num_examples if i.to is None else i.to)
            for i in instructions
        ]

    def _split_fix(self, field: str) -> str:
        """The flag(s) that fix a missing ``field`` split, written for this source's splits."""
        names = self.split_names
        base = "train" if "train" in names else names[0]
        halves = f"--train_split={base}[:50%] --holdout_split={base}[50%:]"
        if field == "holdout_split":
            return (
                f"e.g. --holdout_split={base}[50%:] with --train_split={base}[:50%] "
                "(NAS-Bench-201's protocol: the two halves of the training set, so that the "
                "supernet never trains on the held-out images)"
            )
        if field == "train_split":
            return f"e.g. --train_split={base}, or {halves}"
        if field == "test_split":
            test = "test" if "test" in names else f"{base}[90%:]"
            return f"e.g. --test_split={test}"
        return f"e.g. {base!r} or {base + '[50%:]'!r}"

    def num_examples(self, spec: str, field: str = "split") -> int:
        """Examples that ``spec`` selects (TFDS slicing arithmetic)."""
        return sum(stop - start for _, start, stop in self.absolute(spec, field))

    @property
    def channels(self) -> int:
        """Channels the image feature decodes to (0: each file's own)."""
        return self.builder.info.features["image"].shape[-1] or 0

    def decode(self, encoded: tf.Tensor, dct_method: str = "") -> tf.Tensor:
        """The stored image bytes (JPEG or PNG) -> ``uint8 [H, W, C]``, as ``read`` decodes.

        ``dct_method``: ``""`` is TFDS's decoding (TF's default JPEG IDCT, libjpeg's fast
        integer one); ``"INTEGER_ACCURATE"`` decodes JPEGs with libjpeg's accurate integer IDCT,
        which is what PIL uses (the authors' release reads images with PIL): bit-identical to
        PIL, where the default differs by up to about 12 levels in most pixel values.
        """
        feature = self.builder.info.features["image"]
        if not dct_method:
            return feature.decode_example(encoded)
        return tf.cond(
            tf.io.is_jpeg(encoded),
            lambda: tf.io.decode_jpeg(encoded, channels=self.channels, dct_method=dct_method),
            lambda: feature.decode_example(encoded),
        )

    def read(
        self,
        spec: str,
        *,
        shuffle_files: bool,
        seed: int,
        input_context: tf.distribute.InputContext | None = None,
        decode: bool = True,
        dct_method: str = "",
    ) -> tf.data.Dataset:
        """Examples of ``spec`` as ``(uint8 [H, W, C], int32 [])``, decoded (``dct_method``: see
        :meth:`decode`), in a fixed order; with ``decode=False`` as ``(string [], int32 [])``, the
        stored bytes (decode them with :meth:`decode`, or only a window of a JPEG,
        ``preprocess.imagenet_augment_jpeg``).

        Shards by ``input_context`` (TFDS file-level sharding when the split has at least one file
        per input pipeline, else example-level ``Dataset.shard`` before decoding). The order is a
        function of (data, ``shuffle_files``, ``seed``).
        """
        instructions = self.absolute(spec)
        skip = {"image": tfds.decode.SkipDecoding()}
        pipelines = input_context.num_input_pipelines if input_context else 1
        file_sharded = False
        if self.native_slicing:
            file_sharded = pipelines > 1 and self.builder.info.splits[spec].num_shards >= pipelines
            read_config = tfds.ReadConfig(
                try_autocache=False,
                shuffle_seed=seed,
                input_context=input_context if file_sharded else None,
            )
            ds = self.builder.as_dataset(
                split=spec,
                shuffle_files=shuffle_files,
                read_config=read_config,
                decoders=skip,
                as_supervised=True,
            )
        else:
            parts = [self._folder_part(split, start, stop) for split, start, stop in instructions]
            ds = parts[0]
            for part in parts[1:]:
                ds = ds.concatenate(part)
        if pipelines > 1 and not file_sharded:
            ds = ds.shard(pipelines, input_context.input_pipeline_id)
        return ds.map(
            lambda image, label: (
                self.decode(image, dct_method) if decode else image,
                tf.cast(label, tf.int32),
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def _folder_part(self, split: str, start: int, stop: int) -> tf.data.Dataset:
        """Examples ``[start, stop)`` of an image folder's ``split`` as ``(bytes, label)``.

        Lists only the slice's files (ImageFolder's example order), so a slice such as
        ``train[50%:]`` reads none of the files before it; ImageFolder's own ``as_dataset``
        (then ``skip``/``take``) is the fallback for a builder without that list.
        """
        examples = getattr(self.builder, "_split_examples", None)
        if examples is None:
            return (
                self.builder.as_dataset(
                    split=split, decoders={"image": tfds.decode.SkipDecoding()}, as_supervised=True
                )
                .skip(start)
                .take(stop - start)
            )
        rows = examples[split][start:stop]
        label_feature = self.builder.info.features["label"]
        paths = tf.constant([row.image_path for row in rows], tf.string, shape=[len(rows)])
        labels = tf.constant([label_feature.str2int(row.label) for row in rows], tf.int64)
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.reshape(labels, [len(rows)])))
        return ds.map(
            lambda path, label: (tf.io.read_file(path), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )


def _split_names_in(spec: str) -> list[str]:
    names = []
    for part in spec.split("+"):
        part = part.strip()
        names.append(part.split("[", 1)[0].strip())
    return [name for name in names if name != "all"]


def open_source(config: config_lib.DataConfig) -> Source:
    """Opens (and, where that needs no network, prepares) the data set ``config`` names.

    Raises:
      ValueError: unknown or unsupported name; a folder without class sub-folders.
      FileNotFoundError: the data set is not prepared in ``data_dir`` and cannot be prepared
        offline (message: what to put where), or the folder does not exist.
    """
    config.validate()
    if config.is_folder:
        return _open_folder(config.folder_root)
    return _open_tfds(config)


def _registered_names() -> list[str]:
    return sorted(tfds.list_builders(with_community_datasets=False))


def _open_tfds(config: config_lib.DataConfig) -> Source:
    name = config.name
    try:
        dataset_name, _ = naming.parse_builder_name_kwargs(name)
    except (ValueError, AssertionError) as e:
        raise ValueError(f"DataConfig.name={name!r} is not a TFDS name: {e}") from None
    registered = _registered_names()
    if dataset_name.namespace or dataset_name.name not in registered:
        close = difflib.get_close_matches(dataset_name.name, registered, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown data set {name!r}.{hint} Use a TFDS name registered in this installation "
            "(community/namespaced data sets need the internet and are not supported), "
            f"{digits.NAME!r} for the built-in offline digits, or 'folder:<root>' for an image "
            "folder (<root>/<class>/<image> or <root>/<split>/<class>/<image>)."
        )
    builder = tfds.builder(name, data_dir=config.data_dir, try_gcs=False)
    data_dir_root = os.fspath(builder.data_dir_root)
    if not builder.is_prepared():
        _prepare_offline(builder, config, data_dir_root)
    defaults = config_lib.DEFAULTS.get(dataset_name.name, config_lib.GENERIC)
    return Source(builder, defaults, f"TFDS data set {name!r} in {data_dir_root}")


def _download_and_prepare(builder, **download_config) -> None:
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False, **download_config)
        )
    except ModuleNotFoundError as e:
        if e.name != "importlib_resources":
            raise
        raise ModuleNotFoundError(
            f"Preparing {builder.name!r} with tensorflow-datasets {tfds.__version__} needs the "
            "'importlib_resources' package (TFDS declares it for Python < 3.9 only but imports it "
            "when looking up a builder's checksums): pip install importlib_resources",
            name=e.name,
        ) from e


def _prepare_offline(builder, config, data_dir_root: str) -> None:
    """Prepares ``builder`` if that needs no network, else raises FileNotFoundError."""
    name = builder.name
    if isinstance(builder, _OFFLINE_BUILDERS):
        _download_and_prepare(builder)
        return
    manual_dir = os.fspath(config.manual_dir or os.path.join(data_dir_root, "downloads", "manual"))
    if name == "imagenet2012":
        missing = [
            f for f in IMAGENET_MANUAL_FILES if not os.path.isfile(os.path.join(manual_dir, f))
        ]
        if missing:
            raise FileNotFoundError(
                f"imagenet2012 is not prepared in {data_dir_root} and {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing: put "
                f"{' and '.join(IMAGENET_MANUAL_FILES)} into {manual_dir} (see README 'ImageNet'); "
                "they are prepared on first use (several hours, about 150 GB)."
            )
        _download_and_prepare(builder, manual_dir=manual_dir)
        return
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        raise FileNotFoundError(
            f"TFDS data set {name!r} is not prepared in {data_dir_root}. It needs a manual "
            f"download: {builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip()} Put the files into "
            f"{manual_dir}, then run `tfds build {name} --manual_dir={manual_dir} "
            f"--data_dir={data_dir_root}`."
        )
    raise FileNotFoundError(
        f"TFDS data set {name!r} is not prepared in {data_dir_root}, and this library never "
        f"downloads. Prepare it on a machine with internet with `tfds build {name} "
        f"--data_dir=<dir>`, then copy <dir>/{builder.name} into {data_dir_root} (or point "
        "DataConfig.data_dir at <dir>)."
    )


class _FlatImageFolder(tfds.folder_dataset.ImageFolder, skip_registration=True):
    """``tfds.folder_dataset.ImageFolder`` over ``<root>/<class>/<image>``: one split, ``train``.

    Same reader, label order (sorted class names) and deterministic example order
    (``random.Random("train")`` shuffle of the sorted paths) as ImageFolder; only the listing
    differs.
    Sets the attributes ImageFolder 4.9's ``__init__``/``_as_dataset`` use (``_split_examples`` of
    ``(image_path, label)`` records, ``_image_shape``, ``_image_dtype``); tests cover both layouts.
    """

    _Example = collections.namedtuple("_Example", ["image_path", "label"])

    def __init__(self, root_dir: str, classes: list[str]):
        self._image_shape = None
        self._image_dtype = None
        tfds.core.DatasetBuilder.__init__(self, data_dir=root_dir)
        self._data_dir = root_dir
        examples = [
            self._Example(image_path=path, label=label)
            for label in classes
            for path in _images_in(os.path.join(root_dir, label))
        ]
        random.Random("train").shuffle(examples)
        self._split_examples = {"train": examples}
        self.info.features["label"].names = classes
        self.info.set_splits(
            tfds.core.SplitDict(
                [tfds.core.SplitInfo(name="train", shard_lengths=[len(examples)], num_bytes=0)]
            )
        )


def _subfolders(path: str) -> list[str]:
    return sorted(f for f in os.listdir(path) if os.path.isdir(os.path.join(path, f)))


def _images_in(path: str) -> list[str]:
    return sorted(
        os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS)
    )


def _open_folder(root: str) -> Source:
    layout_help = (
        "Expected <root>/<class>/<image> (one split, 'train', sliced 80/10/10) or "
        "<root>/<split>/<class>/<image>, images ending in " + ", ".join(IMAGE_EXTENSIONS)
    )
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Image folder {root!r} does not exist. {layout_help}.")
    top = _subfolders(root)
    flat_classes = [c for c in top if _images_in(os.path.join(root, c))]
    split_layout = {
        s: [c for c in _subfolders(os.path.join(root, s)) if _images_in(os.path.join(root, s, c))]
        for s in top
    }
    split_layout = {s: classes for s, classes in split_layout.items() if classes}
    description = f"image folder {root!r}"
    if flat_classes and split_layout:
        raise ValueError(
            f"Image folder {root!r} mixes images in {flat_classes[0]!r}/ with class "
            f"folders in {next(iter(split_layout))!r}/. {layout_help}."
        )
    if flat_classes:
        return Source(
            _FlatImageFolder(root, flat_classes),
            config_lib.FOLDER_FLAT,
            description,
            native_slicing=False,
        )
    if split_layout:
        builder = tfds.folder_dataset.ImageFolder(root)
        holdout = next((s for s in ("validation", "val") if s in split_layout), "validation")
        defaults = dataclasses.replace(config_lib.FOLDER_SPLITS, holdout_split=holdout)
        return Source(builder, defaults, description, native_slicing=False)
    raise ValueError(f"Image folder {root!r} has no class sub-folders with images. {layout_help}.")
