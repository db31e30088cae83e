"""The release's colour jitter under ``preprocessing=reference`` (issue 22 item 4):
``transforms.ColorJitter(0.4, 0.4, 0.4)`` on a PIL image, i.e. PIL's ``ImageEnhance`` blends on
``uint8`` in a random order, against a numpy computation written here from PIL's formulas, and
against PIL itself where it is installed."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from spos_tf.data import preprocess


def grey(x):
    """PIL's RGB -> L: 16-bit fixed-point ITU-R 601-2 luma, rounded."""
    x = x.astype(np.int64)
    return (x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 32768) >> 16


def blend(degenerate, x, factor):
    """PIL's Image.blend: float32 interpolation, clipped, truncated to uint8."""
    f = np.float32(factor)
    mixed = np.float32(degenerate) + f * (x.astype(np.float32) - np.float32(degenerate))
    return np.clip(mixed, 0, 255).astype(np.uint8)


def jitter_numpy(x, factors, order):
    for op in order:
        if op == 0:
            x = blend(np.zeros_like(x), x, factors[0])
        elif op == 1:
            mean = int(grey(x).mean() + 0.5)
            x = blend(np.full_like(x, mean), x, factors[1])
        else:
            x = blend(np.repeat(grey(x)[..., None], 3, -1).astype(np.uint8), x, factors[2])
    return x


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (23, 31, 3)).astype(np.uint8)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_reference_jitter_equals_pil_formulas_in_every_order(image, order):
    rng = np.random.default_rng(sum(order))
    factors = rng.uniform(0.6, 1.4, 3).astype(np.float32)
    got = preprocess.reference_color_jitter(
        tf.constant(image), tf.constant(factors), tf.constant(order, tf.int32)
    ).numpy()
    np.testing.assert_array_equal(got, jitter_numpy(image, factors, order))
    if order == (0, 1, 2):  # the order matters: contrast's mean follows brightness
        other = jitter_numpy(image, factors, (2, 1, 0))
        assert np.abs(other.astype(int) - got).max() > 0


def test_reference_jitter_equals_pil_itself(image):
    Image = pytest.importorskip("PIL.Image")
    ImageEnhance = pytest.importorskip("PIL.ImageEnhance")
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    rng = np.random.default_rng(5)
    for order in itertools.permutations(range(3)):
        factors = rng.uniform(0.6, 1.4, 3).astype(np.float32)
        pil = Image.fromarray(image)
        for op in order:
            pil = enhancers[op](pil).enhance(float(factors[op]))
        got = preprocess.reference_color_jitter(
            tf.constant(image), tf.constant(factors), tf.constant(order, tf.int32)
        ).numpy()
        np.testing.assert_array_equal(got, np.asarray(pil), err_msg=str(order))


def test_imagenet_augment_reference_jitter_is_seeded_integer_and_differs_from_standard(image):
    big = tf.image.resize(tf.constant(image), (64, 80)).numpy()
    seed = tf.constant([3, 7], tf.int64)
    a = preprocess.imagenet_augment(big, 24, seed, jitter="reference").numpy()
    b = preprocess.imagenet_augment(big, 24, seed, jitter="reference").numpy()
    standard = preprocess.imagenet_augment(big, 24, seed).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 255 and np.all(a == np.round(a))
    assert np.abs(a - standard).max() > 1.0
    # Different seeds draw different orders: all six permutations appear over 200 seeds.
    orders = set()
    for s in range(200):
        order_seed = tf.random.experimental.stateless_fold_in(tf.constant([s, 1], tf.int64), 1)
        orders.add(tuple(tf.argsort(tf.random.stateless_uniform([3], order_seed)).numpy()))
    assert len(orders) == 6
    with pytest.raises(ValueError, match="jitter must be"):
        preprocess.imagenet_augment(big, 24, seed, jitter="pil")


def test_windowed_jpeg_augment_passes_the_reference_jitter(image):
    encoded = tf.io.encode_jpeg(tf.constant(image), quality=95)
    decoded = tf.io.decode_jpeg(encoded, channels=3)
    seed = tf.constant([11, 2], tf.int64)
    windowed = preprocess.imagenet_augment_jpeg(encoded, 16, seed, jitter="reference").numpy()
    whole = preprocess.imagenet_augment(decoded, 16, seed, jitter="reference").numpy()
    np.testing.assert_array_equal(windowed, whole)


@pytest.mark.parametrize("preprocessing", ["reference", "standard"])
def test_training_pipeline_jitters_as_its_preprocessing_says(tmp_path, image, preprocessing):
    from spos_tf.data import DataConfig, build_dataset

    for i in range(4):
        (tmp_path / f"c{i}").mkdir()
        jpeg = tf.io.encode_jpeg(tf.constant(np.roll(image, 5 * i, axis=1)), quality=90)
        (tmp_path / f"c{i}" / "x.jpg").write_bytes(jpeg.numpy())
    config = DataConfig(
        name=f"folder:{tmp_path}",
        train_split="train",
        image_size=16,
        augment="imagenet",
        preprocessing=preprocessing,
        cache=False,
    )
    x, _ = next(iter(build_dataset(config, "train", 4, training=True, seed=0)))
    x = x.numpy()
    if preprocessing == "reference":  # PIL's uint8 blends: integer BGR values
        assert np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255
    else:  # float jitter, then mean/std normalisation
        assert not np.all(x == np.round(x))
