"""Tests for spos_tf.data.pipeline on JPEG folders (windowed decode), the tf.data service flag and
CIFAR-10 as an image folder (NAS-Bench-201's halves of train, the ``cifar`` augmentation).

Everything is generated under tmp_path; the tf.data service runs in-process (a DispatchServer and a
WorkerServer on localhost ports).
"""

import dataclasses
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf
import tensorflow_datasets as tfds
from spos_tf.train import __main__ as train
from spos_tf import train as train_lib
from spos_tf.data import DataConfig, build_dataset, open_source
from spos_tf.data import dataset_info as data_info
from tensorflow.core.framework import graph_pb2

REPO = Path(__file__).resolve().parents[2]


def write_image_folder(root, per_class=5):
    """Two classes of JPEGs (4:2:0 colour, one grey) of varied sizes, plus one PNG."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        os.makedirs(os.path.join(root, label))
        for i in range(per_class):
            height, width = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            channels = 1 if i == 0 and label == "a" else 3
            coarse = rng.uniform(0, 255, (1, height // 8 + 1, width // 8 + 1, channels))
            image = tf.image.resize(coarse.astype(np.float32), (height, width)).numpy()[0]
            image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
            with open(os.path.join(root, label, f"{i}.jpg"), "wb") as f:
                f.write(tf.io.encode_jpeg(image, quality=90).numpy())
    with open(os.path.join(root, "b", "p.png"), "wb") as f:
        f.write(tf.io.encode_png(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).numpy())
    return root


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp("jpegs") / "images"))


def folder_config(root, **changes):
    return DataConfig(
        name="folder:" + root,
        image_size=24,
        train_split="train",
        holdout_split="train[:3]",
        augment="imagenet",
        **changes,
    )


def batches(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


@pytest.mark.parametrize(
    "cache, preprocessing", [(True, "standard"), (False, "standard"), (False, "reference")]
)
def test_jpeg_folder_trains_with_windowed_decode_and_the_same_images(
    jpeg_folder, cache, preprocessing
):
    config = folder_config(jpeg_folder, cache=cache, preprocessing=preprocessing)
    # 11 images, batch 4: 5 batches cross two epochs (reshuffled) and every image.
    windowed = batches(build_dataset(config, "train", 4, training=True, seed=5), 5)
    whole = batches(
        build_dataset(config, "train", 4, training=True, seed=5, decode_window=False), 5
    )
    again = batches(build_dataset(config, "train", 4, training=True, seed=5), 5)
    for (x, y), (x_whole, y_whole), (x_again, _) in zip(windowed, whole, again):
        assert x.shape == (4, 24, 24, 3) and x.dtype == np.float32 and np.isfinite(x).all()
        np.testing.assert_array_equal(y, y_whole)
        np.testing.assert_array_equal(x, x_whole)  # decode_and_crop == decode then crop
        np.testing.assert_array_equal(x, x_again)  # same seed, same batches
    if preprocessing == "reference":  # BGR on 0..255, not normalised
        images = np.concatenate([x for x, _ in windowed])
        assert images.min() >= 0 and images.max() <= 255 and images.max() > 100
    other = batches(build_dataset(config, "train", 4, training=True, seed=6), 1)
    assert not np.array_equal(other[0][0], windowed[0][0])


def test_eval_roles_of_a_jpeg_folder_decode_whole_images(jpeg_folder):
    """The holdout role (no augmentation) is the central crop of the fully decoded image."""
    config = folder_config(jpeg_folder)
    ((x, _),) = batches(build_dataset(config, "holdout", 3, training=False, seed=0), 1)
    assert x.shape == (3, 24, 24, 3)
    source_order = [os.path.join(jpeg_folder, p) for p in _folder_order(jpeg_folder)[:3]]
    for image, path in zip(x, source_order):
        decoded = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        height, width = decoded.shape[:2]
        side = min(height, width)
        crop = decoded[
            (height - side) // 2 : (height - side) // 2 + side,
            (width - side) // 2 : (width - side) // 2 + side,
        ]
        expected = tf.image.resize(tf.cast(crop, tf.float32), (24, 24)).numpy()
        expected = (expected - np.array([123.675, 116.28, 103.53])) / np.array(
            [58.395, 57.12, 57.375]
        )
        np.testing.assert_allclose(image, expected, atol=1e-4)


def _folder_order(root):
    """ImageFolder's fixed example order: sorted (class, path) rows shuffled by
    ``random.Random("train")`` (see spos_tf.data.sources._FlatImageFolder)."""
    import random

    rows = [
        f"{c}/{f}"
        for c in sorted(os.listdir(root))
        for f in sorted(os.listdir(os.path.join(root, c)))
    ]
    random.Random("train").shuffle(rows)
    return rows


def test_input_pipeline_benchmark_tiny_runs():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import input_pipeline
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    summary = input_pipeline.main(["--tiny"])
    for key in ("before_img_s", "after_img_s", "before_img_per_cpu_s", "after_img_per_cpu_s"):
        assert summary[key] > 0
    assert len(summary["load_avg_1m_before_after"]) == 2


# ------------------------------------------------------------------------- tf.data service
@pytest.mark.parametrize(
    "address", ["dispatcher:5000", "grpc://dispatcher", "grpc:/x:1", "", "grpc://host:port", 5000]
)
def test_data_service_address_is_checked(address):
    with pytest.raises(ValueError, match="grpc://dispatcher:5000"):
        DataConfig(data_service=address).validate()


@pytest.fixture(scope="module")
def data_service():
    """An in-process tf.data service: one dispatcher, one worker; yields the dispatcher target.

    Stopping the worker after the (slow) training run below takes about 60 s: it waits for the
    run's abandoned job (measured; 0.3 s after the other tests alone).
    """
    dispatcher = tf.data.experimental.service.DispatchServer()
    worker = tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(
            dispatcher_address=dispatcher.target.split("://")[1]
        )
    )
    yield dispatcher.target
    worker.stop()
    dispatcher.stop()


def test_training_batches_come_through_the_data_service(jpeg_folder, data_service):
    local = folder_config(jpeg_folder, cache=False)
    served = dataclasses.replace(local, data_service=data_service)
    served_ds = build_dataset(served, "train", 4, training=True, seed=5)
    assert _reads_service(served_ds)
    got = batches(served_ds, 3)
    want = batches(build_dataset(local, "train", 4, training=True, seed=5), 3)
    for (x, y), (x_local, y_local) in zip(got, want):  # one worker: the local stream
        np.testing.assert_array_equal(y, y_local)
        np.testing.assert_array_equal(x, x_local)
    # Evaluation roles stay local (fixed order, small): same as without the flag.
    holdout = batches(build_dataset(served, "holdout", 3, training=False, seed=0), 1)
    assert not _reads_service(build_dataset(served, "holdout", 3, training=False, seed=0))
    np.testing.assert_array_equal(
        holdout[0][0], batches(build_dataset(local, "holdout", 3, training=False, seed=0), 1)[0][0]
    )


def _reads_service(ds):
    """Whether the dataset's graph contains a DataServiceDataset op."""
    graph_def = graph_pb2.GraphDef()
    graph_def.ParseFromString(ds._as_serialized_graph().numpy())
    return any(node.op.startswith("DataServiceDataset") for node in graph_def.node)


@pytest.mark.slow
def test_train_flag_runs_a_supernet_through_the_data_service(tmp_path, data_dir, data_service):
    """--data_service reaches DataConfig, the run trains and checkpoints (without the data
    iterator, which a tf.data service iterator cannot save)."""
    workdir = str(tmp_path / "run")
    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(
        [
            "train",
            f"--flagfile={REPO / 'flags' / 'tiny_supernet.cfg'}",
            f"--workdir={workdir}",
            f"--data_dir={data_dir}",
            f"--data_service={data_service}",
            "--steps=3",
            "--checkpoint_every=3",
            "--eval_paths=2",
        ]
    )
    config = train.config_from_flags(fv)
    assert config.data.data_service == data_service
    train_lib.run(dataclasses.replace(config, progress=False), stream=io.StringIO())
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [r for r in map(json.loads, f) if "loss" in r]
    assert [r["step"] for r in losses] == [3] and np.isfinite(losses[0]["loss"])
    checkpoint = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert checkpoint is not None
    keys = [name for name, _ in tf.train.list_variables(checkpoint)]
    assert not any(k.startswith("data/") for k in keys)
    assert any(k.startswith("model/") for k in keys)


# ------------------------------------------------------- CIFAR-10 as an image folder (issue 19)
CIFAR_SPLITS = dict(train_split="train[:50%]", holdout_split="train[50%:]", test_split="test")
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory):
    """``root/{train,test}/<class>/<n>.png``: 3 classes x 8 train and 2 test 32x32 PNGs of random
    pixels 1..255 (lossless, no zeros: a zero-padded window is unambiguous). Returns ``(root,
    {"train": [(pixels, label)], "test": [...]})`` in file-name order."""
    root = tmp_path_factory.mktemp("cifar") / "cifar10"
    rng = np.random.default_rng(19)
    written = {"train": [], "test": []}
    for split, per_class in (("train", 8), ("test", 2)):
        for label, name in enumerate(("airplane", "bird", "cat")):
            os.makedirs(root / split / name)
            for i in range(per_class):
                pixels = rng.integers(1, 256, (32, 32, 3)).astype(np.uint8)
                tf.io.write_file(
                    str(root / split / name / f"{i:04d}.png"), tf.io.encode_png(pixels)
                )
                written[split].append((pixels, label))
    return str(root), written


def cifar_config(root, **changes):
    return DataConfig(
        name="folder:" + root, image_size=32, augment="cifar", **{**CIFAR_SPLITS, **changes}
    )


def pixels_of(ds):
    """``[(uint8 pixels, label)]`` of every batch of ``ds`` (normalisation undone, rounded)."""
    out = []
    for x, y in ds:
        images = np.round(x.numpy() * STD + MEAN)
        assert images.min() >= 0 and images.max() <= 255
        out += list(zip(images.astype(np.uint8), y.numpy().tolist()))
    return out


def test_cifar_folder_halves_are_disjoint_cover_train_and_keep_32x32_pixels(cifar_folder):
    root, written = cifar_folder
    config = cifar_config(root)
    assert data_info(config) == (3, {"train": 12, "holdout": 12, "test": 6, "calib": 12})
    by_bytes = {p.tobytes(): (p, label) for p, label in written["train"]}
    halves = []
    for role in ("train", "holdout"):  # evaluation path: no augmentation, crop fraction 1.0
        ds = build_dataset(config, role, 5, training=False, seed=0)
        half = []
        for x, y in ds:
            for image, label in zip(x.numpy(), y.numpy()):
                pixels = np.round(image * STD + MEAN).astype(np.uint8)
                original, want_label = by_bytes[pixels.tobytes()]  # one of the training images
                assert label == want_label
                # 32x32 at image_size 32: no resize changes a pixel; exactly the normalisation.
                np.testing.assert_allclose(image, (original - MEAN) / STD, rtol=0, atol=1e-6)
                half.append(pixels.tobytes())
        assert len(half) == len(set(half)) == 12
        assert len({by_bytes[b][1] for b in half}) == 3  # the fixed shuffle mixes the classes
        halves.append(set(half))
    assert not halves[0] & halves[1]  # disjoint
    assert halves[0] | halves[1] == set(by_bytes)  # together: the whole train split
    # The halves are ImageFolder's own order sliced (the source lists only the slice's files).
    source = open_source(config)
    whole = list(
        source.builder.as_dataset(
            split="train", decoders={"image": tfds.decode.SkipDecoding()}, as_supervised=True
        ).as_numpy_iterator()
    )
    for spec, rows in (("train[:50%]", whole[:12]), ("train[50%:]", whole[12:])):
        got = list(source.read(spec, shuffle_files=False, seed=0, decode=False).as_numpy_iterator())
        assert [(b, int(y)) for b, y in got] == [(b, int(y)) for b, y in rows]
    test = pixels_of(build_dataset(config, "test", 4, training=False, seed=0))
    assert sorted((p.tobytes(), y) for p, y in test) == sorted(
        (p.tobytes(), y) for p, y in written["test"]
    )


def test_cifar_folder_trains_on_pad_crop_flip_windows_of_its_half(cifar_folder):
    root, written = cifar_folder
    config = cifar_config(root)
    first_half = {
        p.tobytes()
        for p, _ in pixels_of(build_dataset(config, "train", 12, training=False, seed=0))
    }
    label_of = {p.tobytes(): label for p, label in written["train"]}
    windows, owners = [], []  # every pad-4 window, flipped or not, of every first-half image
    for key in first_half:
        image = np.frombuffer(key, np.uint8).reshape(32, 32, 3)
        padded = np.pad(image, [(4, 4), (4, 4), (0, 0)])
        for dy in range(9):
            for dx in range(9):
                window = padded[dy : dy + 32, dx : dx + 32]
                windows += [window, window[:, ::-1]]
                owners += [(key, dy, dx, False), (key, dy, dx, True)]
    windows = np.stack(windows)
    ds = build_dataset(config, "train", 6, training=True, seed=3)
    got = pixels_of(ds.take(6))  # 36 images: three epochs of the 12
    again = pixels_of(build_dataset(config, "train", 6, training=True, seed=3).take(6))
    seen = []
    for (image, label), (image_again, _) in zip(got, again):
        np.testing.assert_array_equal(image, image_again)  # same seed, same batches
        matches = np.flatnonzero(np.all(windows == image, axis=(1, 2, 3)))
        assert len(matches) == 1
        key, dy, dx, flipped = owners[matches[0]]
        assert label == label_of[key]
        seen.append((dy, dx, flipped))
    assert len({s[:2] for s in seen}) > 10 and {s[2] for s in seen} == {False, True}


def test_folder_without_the_asked_split_names_its_splits_and_the_fix(cifar_folder):
    root, _ = cifar_folder
    config = cifar_config(root, holdout_split="validation")
    fix = (
        r"has no split 'validation'; its splits are \['test', 'train'\]\..*"
        r"--holdout_split=train\[50%:\] with --train_split=train\[:50%\]"
    )
    with pytest.raises(ValueError, match=fix):
        data_info(config)
    with pytest.raises(ValueError, match=fix):
        build_dataset(config, "holdout", 4, training=False, seed=0)
    # Left to the default of a folder with split sub-folders ("validation"): the same message.
    default = DataConfig(name="folder:" + root, image_size=32)
    with pytest.raises(ValueError, match=fix):
        data_info(default)
    with pytest.raises(ValueError, match=r"no split 'val'.*--test_split=test"):
        data_info(cifar_config(root, test_split="val"))


def test_cifar_folder_benchmark_runs_and_needs_a_root(cifar_folder, capsys):
    root, _ = cifar_folder
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import cifar_folder_pipeline
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    result = cifar_folder_pipeline.main(
        [f"--root={root}", "--batch_size=4", "--warmup=1", "--batches=2"]
    )
    for key in ("build_s", "first_batch_s", "img_s", "img_per_cpu_s", "holdout_first_batch_s"):
        assert result[key] > 0
    halves = list(result["class_counts"].values())
    assert [sum(h) for h in halves] == [12, 12]
    assert [a + b for a, b in zip(*halves)] == [8, 8, 8]
    with pytest.raises(SystemExit):
        cifar_folder_pipeline.main([])
    assert "--root=<cifar10_root>" in capsys.readouterr().err
