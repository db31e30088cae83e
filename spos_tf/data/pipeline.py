"""``build_dataset``: one ``tf.data`` input pipeline for every data set and every use.

Order of operations (host side, all ``map``/``prefetch`` with ``tf.data.AUTOTUNE``, deterministic):
read (TFDS or folder, sharded by ``input_context``) -> decode -> ``cache`` (decoded, not augmented;
filled during ``build_dataset``, see :func:`_filled_cache`)
-> seeded ``shuffle`` (training) -> ``repeat`` -> augment or evaluation crop/resize -> normalise
(:func:`~spos_tf.data.preprocess.normalize`) -> batch -> prefetch.

With the ``imagenet`` augmentation, JPEGs are not decoded after reading: the stored bytes are
cached and shuffled, and the random-resized crop decodes only its window
(:func:`~spos_tf.data.preprocess.imagenet_augment_jpeg`, ``tf.image.decode_and_crop_jpeg``, as
TF's own ImageNet pipelines do); other formats (PNG) are decoded whole at that point. The images
are the same either way (``decode_window=False`` decodes whole JPEGs first: the "before" of
``benchmarks/input_pipeline.py``).

With ``config.data_service``, the training role's batches are made by the workers of a
``tf.data.experimental.service`` cluster (``distributed_epoch``: the dispatcher hands each worker
splits of the source); this process only receives them. The order then depends on worker timing.

Randomness is a function of ``seed`` only: the shuffle is seeded, and each example's augmentation
uses the stateless seed ``(seed, counter)``, where ``counter`` is the example's position in this
pipeline's output stream (times the number of input pipelines, plus this pipeline's id). Building
the same pipeline twice gives the same batches.
"""

from __future__ import annotations

import functools
import typing

import tensorflow as tf

from spos_tf.data import config as config_lib
from spos_tf.data import preprocess
from spos_tf.data import sources

ROLES = ("train", "holdout", "test", "calib")
# role -> the DataConfig field holding its split spec. "calib" = training images, no augmentation
# (BatchNorm recalibration of a sampled architecture).
SPLIT_FIELD = {
    "train": "train_split",
    "holdout": "holdout_split",
    "test": "test_split",
    "calib": "train_split",
}
_AUGMENTERS = {
    "light": preprocess.light_augment,
    "imagenet": preprocess.imagenet_augment,
    "cifar": preprocess.cifar_augment,
}


class DataInfo(typing.NamedTuple):
    """What a model and a schedule need to know about a config's data."""

    num_classes: int
    num_examples: dict  # role ("train", "holdout", "test", "calib") -> examples in its split


def dataset_info(config: config_lib.DataConfig) -> DataInfo:
    """Classes and examples per role of ``config`` (prepares ``spos_digits`` if needed).

    Raises:
      ValueError, FileNotFoundError: as :func:`build_dataset`.
    """
    source = sources.open_source(config)
    resolved = config.resolved(source.defaults)
    return DataInfo(
        source.num_classes,
        {
            role: source.num_examples(getattr(resolved, field), field)
            for role, field in SPLIT_FIELD.items()
        },
    )


def resolve(config: config_lib.DataConfig) -> config_lib.DataConfig:
    """``config`` with every ``None`` field set to the value the pipeline will use."""
    return config.resolved(sources.open_source(config).defaults)


def _filled_cache(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds.cache()``, filled now (one pass over ``ds``) when running eagerly.

    tf.data's in-memory cache is shared by every iterator of the dataset. An iterator abandoned
    while the cache is still being written (``next(iter(ds))`` to peek at a batch, ``take(n)``)
    races with the next iterator and can leave it a truncated cache: with TF 2.21, peeking and then
    iterating a 300-example split returned 33-71 examples in about one build in eight. A cache
    completed before any user iterator exists is only ever read, so every pass sees all examples.
    """
    ds = ds.cache()
    if tf.executing_eagerly():
        ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    return ds


def build_dataset(
    config: config_lib.DataConfig,
    split_role: str,
    batch_size: int,
    *,
    training: bool,
    seed: int,
    repeat: bool | None = None,
    drop_remainder: bool | None = None,
    augment: bool | None = None,
    input_context: tf.distribute.InputContext | None = None,
    decode_window: bool = True,
    reshuffle_each_iteration: bool = True,
) -> tf.data.Dataset:
    """The input pipeline for one role of one data set.

    Args:
      config: the data set; ``None`` fields take its defaults (see ``DataConfig.resolved``).
      split_role: ``"train"`` (supernet training), ``"holdout"`` (search fitness), ``"test"``
        (final report) or ``"calib"`` (training images, never augmented, for BatchNorm
        recalibration).
      batch_size: global batch size; with ``input_context`` each pipeline batches
        ``input_context.get_per_replica_batch_size(batch_size)``.
      training: shuffle (seeded) and, for ``"train"`` only, augment with ``config.augment``.
        Otherwise examples come in the data set's fixed order with evaluation preprocessing.
      seed: int; the whole stream (order and augmentation) is a function of it.
      repeat: repeat forever; default ``training``.
      drop_remainder: drop a last partial batch; default ``training``.
      augment: apply ``config.augment`` (the training augmentation); default ``training`` for
        ``"train"``. ``augment=True`` with ``training=False`` gives augmented images in the
        split's stored order (no shuffle), each augmented by the stateless seed ``(seed, position
        in the stream)``: every new iterator yields the same images with the same augmentation
        (BN recalibration on augmented training images, e.g. ``"calib"`` with
        ``augment=True``).
      input_context: from ``strategy.distribute_datasets_from_function``; shards the examples
        between input pipelines.
      decode_window: with the ``imagenet`` augmentation, decode only the crop window of JPEG
        images (same images, less decoding); ``False`` decodes every image whole first.
      reshuffle_each_iteration: with ``training``, each new iterator of the returned data set
        draws a new order (the default); ``False``: every iterator yields the same order, a fixed
        seeded shuffle of the split by the shuffle buffer alone (files are read in stored order),
        e.g. one candidate's calibration window in :mod:`spos_tf.search.data`.

    Cost: opening the data set (and preparing ``spos_digits`` on first use, ~3 s); with
    ``config.cache`` one eager pass over this pipeline's examples to fill the cache.

    Returns:
      ``tf.data.Dataset`` of ``(images float32 [B, S, S, 3], labels int32 [B])``, ``S`` =
      ``image_size``, images normalised with ``preprocess.MEAN_RGB`` / ``STDDEV_RGB`` (or as
      ``config.preprocessing`` says, see ``preprocess.finish``).

    Raises:
      ValueError: bad role, batch size, seed or config value; unknown data set or split.
      FileNotFoundError: data set not prepared and not preparable offline (the message says what
        to put where); missing folder.
    """
    if split_role not in ROLES:
        raise ValueError(f"split_role must be one of {ROLES}, got {split_role!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    source = sources.open_source(config)
    cfg = config.resolved(source.defaults)
    field = SPLIT_FIELD[split_role]
    spec = getattr(cfg, field)
    num_examples = source.num_examples(spec, field)
    if num_examples == 0:
        raise ValueError(f"DataConfig.{field}={spec!r} selects no examples of {source.description}")
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    pipelines, pipeline_id = 1, 0
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id

    size = cfg.image_size
    if augment is None:
        augment = training and split_role == "train"
    augment = cfg.augment if augment else "none"
    windowed = decode_window and augment == "imagenet"
    ds = source.read(
        spec,
        shuffle_files=training and reshuffle_each_iteration,
        seed=seed,
        input_context=input_context,
        decode=not windowed,
        # eval_resize=reference: the release's pixels, so its decoder's too (PIL: accurate IDCT)
        dct_method="INTEGER_ACCURATE" if cfg.eval_resize == "reference" else "",
    )
    if cfg.cache:
        ds = _filled_cache(ds)
    if training:
        ds = ds.shuffle(
            min(cfg.shuffle_buffer, num_examples),
            seed=seed,
            reshuffle_each_iteration=reshuffle_each_iteration,
        )
    if repeat:
        ds = ds.repeat()

    if augment == "none":
        crop = cfg.eval_crop_fraction

        def prepare(image, label):
            return preprocess.preprocess_for_eval(
                image, size, crop, cfg.preprocessing, cfg.eval_resize
            ), label
    else:
        augmenter = _AUGMENTERS[augment]
        jitter = {}
        if augment == "imagenet":  # preprocessing=reference: the release's ColorJitter too
            jitter = {"jitter": cfg.preprocessing}
            augmenter = functools.partial(augmenter, **jitter)

        def prepare(index, example):
            image, label = example
            example_seed = tf.stack([tf.constant(seed, tf.int64), index * pipelines + pipeline_id])
            if windowed:  # image: the stored bytes
                image = tf.cond(
                    tf.io.is_jpeg(image),
                    lambda: preprocess.imagenet_augment_jpeg(
                        image, size, example_seed, source.channels, **jitter
                    ),
                    lambda: augmenter(preprocess.to_rgb(source.decode(image)), size, example_seed),
                )
            else:
                image = augmenter(preprocess.to_rgb(image), size, example_seed)
            return preprocess.finish(image, cfg.preprocessing), label

        ds = ds.enumerate()
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    if cfg.data_service and training and split_role == "train":
        ds = ds.apply(
            tf.data.experimental.service.distribute(
                processing_mode="distributed_epoch", service=cfg.data_service
            )
        )
    return ds.prefetch(tf.data.AUTOTUNE)
