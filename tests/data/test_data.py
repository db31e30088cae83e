"""Tests for spos_tf.data: the spos_digits builder, DataConfig, build_dataset, folders, errors.

Every data_dir is under tmp_path; nothing here downloads (the machine has no network).
"""

import dataclasses
import os

import numpy as np
import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import spos_tf.data as data
import tensorflow as tf
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits
from spos_tf.data import digits, preprocess

MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


class SposTestTiny(tfds.core.GeneratorBasedBuilder):
    """A tiny TFDS data set made by the tests: 4x4 RGB images whose colour encodes the label."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # see spos_tf.data.digits.SposDigits.code_path
    COLOURS = ((250, 0, 0), (0, 250, 0))

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(4, 4, 3)),
                    "label": tfds.features.ClassLabel(num_classes=2),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        sizes = {"train": 10, "validation": 4, "test": 6}
        return {split: self._generate_examples(n) for split, n in sizes.items()}

    def _generate_examples(self, n):
        for i in range(n):
            image = np.broadcast_to(np.array(self.COLOURS[i % 2], np.uint8), (4, 4, 3))
            yield i, {"image": image, "label": i % 2}


def denormalise(images):
    return np.round(np.asarray(images) * STD + MEAN).astype(np.int64)


def collect(ds):
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def as_multiset(images, labels):
    return sorted((int(y), x.astype(np.float32).round(4).tobytes()) for x, y in zip(images, labels))


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tfds"))
    data.dataset_info(data.DataConfig(data_dir=path))  # prepares spos_digits once
    return path


@pytest.fixture(scope="module")
def sk():
    d = load_digits()
    return d.images, d.target


# ----------------------------------------------------------------------------- spos_digits builder
def test_digits_builder_splits_cover_sklearn_exactly(digits_dir, sk):
    sk_images, sk_labels = sk
    builder = tfds.builder("spos_digits", data_dir=digits_dir)  # registered by spos_tf.data
    assert builder.info.features["label"].num_classes == 10
    seen = {}
    for split in ("train", "validation", "test"):
        rows = []
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            row = int(ex["index"])
            rows.append(row)
            expected = np.floor(sk_images[row] * 255 / 16 + 0.5).astype(np.uint8)[..., None]
            np.testing.assert_array_equal(ex["image"], expected)
            assert ex["label"] == sk_labels[row]
        seen[split] = rows
    assert {k: len(v) for k, v in seen.items()} == {"train": 1197, "validation": 300, "test": 300}
    all_rows = seen["train"] + seen["validation"] + seen["test"]
    assert len(set(all_rows)) == len(all_rows) == 1797  # disjoint, complete
    for split, rows in seen.items():  # stratified to within one example per class
        counts = np.bincount(sk_labels[rows], minlength=10)
        expected = np.bincount(sk_labels) * len(rows) / 1797
        assert np.all(np.abs(counts - expected) <= 1.0), (split, counts)
    assert sorted(seen["validation"]) == digits.split_indices(sk_labels)["validation"].tolist()


def test_scale_to_uint8_rounds_half_up():
    np.testing.assert_array_equal(digits.scale_to_uint8([0, 1, 8, 15, 16]), [0, 16, 128, 239, 255])


def test_pipeline_test_split_equals_sklearn(digits_dir, sk):
    sk_images, sk_labels = sk
    config = data.DataConfig(data_dir=digits_dir, image_size=8, augment="none")
    images, labels = collect(data.build_dataset(config, "test", 64, training=False, seed=0))
    assert images.shape == (300, 8, 8, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32
    pixels = denormalise(images)
    assert np.all(pixels[..., 0] == pixels[..., 1]) and np.all(pixels[..., 0] == pixels[..., 2])
    rows = digits.split_indices(sk_labels)["test"]
    expected = np.floor(sk_images[rows] * 255 / 16 + 0.5).astype(np.int64)
    got = sorted((int(y), x[..., 0].tobytes()) for x, y in zip(pixels, labels))
    want = sorted((int(y), x.tobytes()) for x, y in zip(expected, sk_labels[rows]))
    assert got == want


def test_dataset_info_and_defaults(digits_dir):
    info = data.dataset_info(data.DataConfig(data_dir=digits_dir))
    assert info == (10, {"train": 1197, "holdout": 300, "test": 300, "calib": 1197})
    resolved = data.resolve(data.DataConfig(data_dir=digits_dir))
    assert (resolved.image_size, resolved.holdout_split, resolved.augment) == (
        32,
        "validation",
        "light",
    )
    imagenet = data.DataConfig(name="imagenet2012").resolved()
    assert (imagenet.train_split, imagenet.holdout_split, imagenet.test_split) == (
        "train[:-50000]",
        "train[-50000:]",
        "validation",
    )
    assert imagenet.cache is False and imagenet.augment == "imagenet" and imagenet.image_size == 224
    cifar10 = data.DataConfig(name="cifar10").resolved()  # the standard CIFAR pad-crop-flip
    assert (cifar10.image_size, cifar10.augment, cifar10.eval_crop_fraction) == (32, "cifar", 1.0)
    assert data.AUGMENTATIONS == ("imagenet", "light", "cifar", "none")


# ----------------------------------------------------------------------------------------- pipeline
@pytest.mark.parametrize("role", data.ROLES)
def test_shapes_and_dtypes(digits_dir, role):
    config = data.DataConfig(data_dir=digits_dir, image_size=16)
    x, y = next(iter(data.build_dataset(config, role, 24, training=True, seed=3)))
    assert x.shape == (24, 16, 16, 3) and x.dtype == tf.float32
    assert y.shape == (24,) and y.dtype == tf.int32
    assert np.all((y.numpy() >= 0) & (y.numpy() < 10))


def test_normalisation_constants():
    np.testing.assert_allclose(data.MEAN_RGB, MEAN, rtol=1e-6)
    np.testing.assert_allclose(data.STDDEV_RGB, STD, rtol=1e-6)
    grey = tf.fill([5, 5, 1], tf.constant(100, tf.uint8))
    out = data.preprocess_for_eval(grey).numpy()
    assert out.shape == (5, 5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 1)), (100 - MEAN) / STD, rtol=1e-5)


def test_preprocess_for_eval_crops_centre_and_batches():
    image = tf.reshape(tf.range(10 * 16 * 3, dtype=tf.int32) % 251, [10, 16, 3])
    image = tf.cast(image, tf.uint8)
    np.testing.assert_allclose(
        data.preprocess_for_eval(image, 10).numpy(),  # central square
        data.normalize(image[:, 3:13]).numpy(),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        data.preprocess_for_eval(image, 8, crop_fraction=0.8).numpy(),
        data.normalize(image[1:9, 4:12]).numpy(),
        rtol=1e-6,
    )
    batch = tf.stack([image, 255 - image])
    np.testing.assert_allclose(
        data.preprocess_for_eval(batch, 8, 0.8)[1].numpy(),
        data.preprocess_for_eval(255 - image, 8, 0.8).numpy(),
        rtol=1e-6,
    )


def _first_batches(config, seed, n=3, role="train"):
    ds = data.build_dataset(config, role, 32, training=True, seed=seed)
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


@pytest.mark.parametrize("augment", ["light", "none", "imagenet", "cifar"])
def test_same_seed_same_batches_different_seed_different_order(digits_dir, augment):
    config = data.DataConfig(data_dir=digits_dir, image_size=16, augment=augment)
    a, b, c = (_first_batches(config, s) for s in (7, 7, 8))
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(ya, yc) for (_, ya), (_, yc) in zip(a, c))


def test_none_and_calib_are_unaugmented_shuffles_of_eval(digits_dir):
    config = data.DataConfig(data_dir=digits_dir, image_size=16, augment="light")
    eval_x, eval_y = collect(data.build_dataset(config, "train", 100, training=False, seed=0))
    reference = as_multiset(eval_x, eval_y)
    calib_x, calib_y = collect(
        data.build_dataset(
            config, "calib", 100, training=True, seed=5, repeat=False, drop_remainder=False
        )
    )
    assert as_multiset(calib_x, calib_y) == reference  # same images, no augmentation
    assert not np.array_equal(calib_y, eval_y)  # but shuffled
    none = dataclasses.replace(config, augment="none")
    none_x, none_y = collect(
        data.build_dataset(none, "train", 100, training=True, seed=5, repeat=False)
    )
    assert len(none_y) == 1100 and set(as_multiset(none_x, none_y)) <= set(reference)
    light_x, light_y = collect(
        data.build_dataset(config, "train", 100, training=True, seed=5, repeat=False)
    )
    assert len(set(as_multiset(light_x, light_y)) - set(reference)) > 500  # light does augment


def test_light_augment_is_a_small_translation_without_flip():
    rng = np.random.RandomState(0)
    image = tf.constant(rng.randint(0, 256, (16, 16, 3)), tf.float32)
    padded = np.pad(image.numpy(), [(2, 2), (2, 2), (0, 0)])
    offsets = set()
    for s in range(12):
        out = preprocess.light_augment(image, 16, tf.constant([s, 1], tf.int64)).numpy()
        match = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(out, padded[dy : dy + 16, dx : dx + 16])
        ]
        assert len(match) == 1
        offsets.add(match[0])
    assert len(offsets) > 3


def test_imagenet_augment_stays_in_range_and_depends_on_seed():
    image = tf.constant(np.random.RandomState(1).randint(0, 256, (40, 30, 3)), tf.uint8)
    outs = [
        preprocess.imagenet_augment(image, 24, tf.constant([s, 0], tf.int64)).numpy()
        for s in (0, 0, 1)
    ]
    assert outs[0].shape == (24, 24, 3)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    assert outs[0].min() >= 0 and outs[0].max() <= 255


def test_input_context_shards_and_sets_per_replica_batch(digits_dir):
    config = data.DataConfig(data_dir=digits_dir, image_size=8, augment="none")
    parts = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = data.build_dataset(config, "test", 64, training=False, seed=0, input_context=ctx)
        assert next(iter(ds))[0].shape[0] == 32
        parts.append(collect(ds))
    whole = as_multiset(*collect(data.build_dataset(config, "test", 64, training=False, seed=0)))
    assert [len(y) for _, y in parts] == [150, 150]
    assert sorted(as_multiset(*parts[0]) + as_multiset(*parts[1])) == whole


@pytest.mark.slow
def test_peeking_at_a_batch_does_not_truncate_the_cache(digits_dir):
    # tf.data's shared in-memory cache, left half-written by an abandoned iterator, used to
    # truncate the next pass (about one build in eight here); the pipeline now fills it up front.
    config = data.DataConfig(data_dir=digits_dir, image_size=8, augment="none", cache=True)
    for trial in range(15):
        for pipeline_id in range(2):
            ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id)
            ds = data.build_dataset(config, "test", 64, training=False, seed=0, input_context=ctx)
            next(iter(ds))
            assert sum(int(y.shape[0]) for _, y in ds) == 150, trial


# ------------------------------------------------------------------------------------ image folder
COLOURS = {"a_red": (220, 20, 20), "b_green": (20, 220, 20), "c_blue": (20, 20, 220)}


def write_class_folder(root, per_class):
    for cls, colour in COLOURS.items():
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for i in range(per_class):
            image = np.broadcast_to(np.array(colour, np.uint8), (12, 12, 3))
            path = os.path.join(root, cls, f"img{i}.png")
            tf.io.write_file(path, tf.io.encode_png(image))


def check_colours_match_labels(images, labels):
    pixels = denormalise(images)
    colours = list(COLOURS.values())
    for x, y in zip(pixels, labels):
        assert np.all(x == np.array(colours[y])), (y, x[0, 0])


def test_flat_folder_is_train_sliced_80_10_10(tmp_path):
    root = str(tmp_path / "flat")
    write_class_folder(root, 6)
    config = data.DataConfig(name=f"folder:{root}", image_size=12, augment="none")
    assert data.dataset_info(config) == (3, {"train": 14, "holdout": 2, "test": 2, "calib": 14})
    seen = []
    for role in ("train", "holdout", "test"):
        images, labels = collect(data.build_dataset(config, role, 4, training=False, seed=0))
        check_colours_match_labels(images, labels)
        seen.append(labels)
    assert np.bincount(np.concatenate(seen)).tolist() == [6, 6, 6]


def test_split_folder_layout_uses_split_subfolders(tmp_path):
    root = tmp_path / "splits"
    for split, n in (("train", 4), ("val", 1), ("test", 2)):
        write_class_folder(str(root / split), n)
    config = data.DataConfig(name=f"folder:{root}", image_size=16)
    assert data.dataset_info(config) == (3, {"train": 12, "holdout": 3, "test": 6, "calib": 12})
    images, labels = collect(data.build_dataset(config, "holdout", 8, training=False, seed=0))
    check_colours_match_labels(images, labels)
    assert sorted(labels.tolist()) == [0, 1, 2]
    augmented = data.build_dataset(config, "train", 6, training=True, seed=1)  # "imagenet" jitter
    for images, labels in augmented.take(2):  # keeps the dominant channel of the image centre
        np.testing.assert_array_equal(denormalise(images)[:, 8, 8].argmax(-1), labels)


# ----------------------------------------------------------------------------- other TFDS by name
def test_tiny_tfds_dataset_by_name(tmp_path):
    data_dir = str(tmp_path / "tfds")
    name = "spos_test_tiny"
    config = data.DataConfig(name=name, data_dir=data_dir, image_size=4, augment="none")
    with pytest.raises(FileNotFoundError, match=f"tfds build {name} --data_dir"):
        data.build_dataset(config, "train", 2, training=False, seed=0)
    assert not os.path.exists(data_dir)  # a failed call writes nothing
    tfds.builder(name, data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    assert data.dataset_info(config) == (2, {"train": 10, "holdout": 4, "test": 6, "calib": 10})
    images, labels = collect(data.build_dataset(config, "test", 4, training=False, seed=0))
    pixels = denormalise(images)
    for x, y in zip(pixels, labels):
        assert np.all(x == np.array(SposTestTiny.COLOURS[y]))
    sliced = dataclasses.replace(config, holdout_split="train[-3:]", train_split="train[:-3]")
    assert data.dataset_info(sliced).num_examples["holdout"] == 3
    with pytest.raises(ValueError, match=r"no split 'val'.*\['test', 'train', 'validation'\]"):
        data.build_dataset(
            dataclasses.replace(config, holdout_split="val"), "holdout", 2, training=False, seed=0
        )
    with pytest.raises(ValueError, match="test\\[:50\\]"):
        data.dataset_info(dataclasses.replace(config, test_split="test[:50]"))


# ------------------------------------------------------------------------------------- bad inputs
def test_imagenet_without_manual_files_names_files_and_dir(tmp_path):
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "ILSVRC2012_img_train.tar").write_bytes(b"")
    config = data.DataConfig(name="imagenet2012", data_dir=str(data_dir), manual_dir=str(manual))
    with pytest.raises(FileNotFoundError) as err:
        data.build_dataset(config, "train", 8, training=True, seed=0)
    message = str(err.value)
    assert "ILSVRC2012_img_val.tar is missing" in message
    assert (
        f"put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar into {manual} "
        "(see README 'ImageNet')"
    ) in message
    default_manual = os.path.join(str(data_dir), "downloads", "manual")
    with pytest.raises(FileNotFoundError, match=f"into {default_manual} "):
        data.dataset_info(dataclasses.replace(config, manual_dir=None))
    assert os.listdir(data_dir) == []


def test_unprepared_registered_dataset_is_not_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not prepared in .*tfds build mnist --data_dir="):
        data.dataset_info(data.DataConfig(name="mnist", data_dir=str(tmp_path)))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "name, match",
    [
        ("spos_digitz", "Unknown data set 'spos_digitz'. Did you mean 'spos_digits'"),
        ("kaggle:some_set", "Unknown data set 'kaggle:some_set'.*folder:<root>"),
    ],
)
def test_unknown_name(tmp_path, name, match):
    with pytest.raises(ValueError, match=match):
        data.build_dataset(
            data.DataConfig(name=name, data_dir=str(tmp_path)), "train", 2, training=False, seed=0
        )
    assert os.listdir(tmp_path) == []


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.dataset_info(data.DataConfig(name=f"folder:{tmp_path / 'nope'}"))
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="has no class sub-folders with images"):
        data.dataset_info(data.DataConfig(name=f"folder:{tmp_path}"))


@pytest.mark.parametrize(
    "changes",
    [
        dict(name=""),
        dict(name="folder:"),
        dict(image_size=0),
        dict(image_size=3.5),
        dict(image_size=True),
        dict(augment="flip"),
        dict(train_split="train[:abc]"),
        dict(test_split=""),
        dict(shuffle_buffer=0),
        dict(eval_crop_fraction=0.0),
        dict(eval_crop_fraction=1.5),
        dict(cache="yes"),
        dict(data_dir=3),
        dict(train_split="train", holdout_split="train"),
    ],
)
def test_validate_rejects_bad_values(changes):
    config = data.DataConfig(**changes)
    field, value = next(iter(changes.items()))
    with pytest.raises(ValueError) as err:
        config.validate()
    assert field in str(err.value) and repr(value) in str(err.value)


def test_validate_returns_self_for_good_config():
    config = data.DataConfig(name="cifar10", image_size=32, holdout_split="train[-10%:]")
    assert config.validate() is config


@pytest.mark.parametrize(
    "args, match",
    [
        (("valid", 8), "split_role"),
        (("train", 0), "batch_size"),
        (("train", 8, -1), "seed"),
    ],
)
def test_build_dataset_rejects_bad_arguments(digits_dir, args, match):
    role, batch = args[:2]
    seed = args[2] if len(args) > 2 else 0
    with pytest.raises(ValueError, match=match):
        data.build_dataset(
            data.DataConfig(data_dir=digits_dir), role, batch, training=False, seed=seed
        )
